"""Preprocessing, decided once and used everywhere: the plan of a run (plan.py, model.json),
windowing of intensities (windowing.py), slicing and resampling (slicing.py), and the recipe from
decoded pixels to the model's input (recipe.py) that training and prediction both call (numpy
and Pillow only: no torch, no Qt, no file formats)."""
