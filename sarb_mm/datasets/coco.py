# placeholder: being written
CocoMultiLabelDataset = None
