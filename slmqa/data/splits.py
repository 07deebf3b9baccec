"""The data splits, the argument naming each one's file and the stage flag that uses it."""

SPLIT_FILE_ARG = {"train": "train_file", "validation": "validation_file", "test": "test_file"}
SPLIT_STAGE_FLAG = {"train": "do_train", "validation": "do_eval", "test": "do_predict"}
SPLITS = tuple(SPLIT_FILE_ARG)
