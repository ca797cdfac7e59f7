"""A trained run put to use: its test-set report, pictures, TensorBoard extras, predictions and exports."""
