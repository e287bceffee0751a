"""Deploying a trained network: one ONNX file that predicts fast on a CPU, and a web service.

- `export`: a run as one ONNX graph with its preprocessing inside, checked against PyTorch (``medtune export``).
- `quantize`: int8 static quantisation of an exported model, judged on the test split.
- `service`: what ``medtune serve`` answers: predictions, maps, masks and similar cases for uploaded images.
- `server`: the FastAPI application (page ``page.html``, ``POST /predict``) and the uvicorn runner.
"""
