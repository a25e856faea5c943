"""The three work areas of the main window (Data, Train, Review) and their plots."""
