"""The user's own Hugging Face classifiers, searched and pruned as they are (see ``model.py``)."""
