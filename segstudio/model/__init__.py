"""The model: building a run's U-Net (unet.py, with its normalisation layers, norms.py, and
encoder weights, weights.py / weights_download.py), choosing the device (device.py), and the
backends that run a trained model (backends.py): PyTorch for a run folder or a fold set
(ensemble.py), onnxruntime for an exported file (onnx.py). No Qt; fastai only where a PyTorch
model is built."""
