# placeholder: being written
VOC2007MultiLabelDataset = None
