"""The model zoo, built only from cnnlab.nn blocks."""
