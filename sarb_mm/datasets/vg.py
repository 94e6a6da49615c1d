# placeholder: being written
VG200MultiLabelDataset = None
