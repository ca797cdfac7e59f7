# The image a TFJob of `python run.py cluster --manifest tfjob --image IMAGE` runs (docs/distributed.md):
#   docker build -t IMAGE . && docker push IMAGE
# This project installed with its dependencies, MNIST inside the package; every pod runs `python -m graph_nn`.
FROM python:3.11-slim
WORKDIR /graph_nn
COPY pyproject.toml setup.cfg README.md ./
COPY graph_nn graph_nn
RUN pip install --no-cache-dir . && rm -rf /graph_nn
WORKDIR /
