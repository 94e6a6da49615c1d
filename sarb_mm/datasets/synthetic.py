# placeholder: being written
make_demo_dataset = None
SyntheticCocoDataset = None
