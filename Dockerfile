# tao_qat image. CPU by default (slim Python 3.11); for GPU/TensorRT use an NVIDIA base, e.g.
#   docker build --build-arg BASE_IMAGE=nvcr.io/nvidia/tensorrt:24.12-py3 --build-arg EXTRAS=tensorrt -t tao-qat:trt .
# The NVIDIA image brings CUDA, cuDNN and TensorRT; EXTRAS=tensorrt adds the tensorrt/pycuda wheels.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ARG EXTRAS=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_USE_LEGACY_KERAS=1 \
    TF_CPP_MIN_LOG_LEVEL=2

WORKDIR /opt/tao_qat
COPY pyproject.toml README.md ./
COPY tao_qat ./tao_qat
COPY examples ./examples
RUN python3 -m pip install --upgrade pip \
 && if [ -n "$EXTRAS" ]; then python3 -m pip install ".[${EXTRAS}]"; else python3 -m pip install .; fi \
 && qat --help > /dev/null

WORKDIR /workspace
ENTRYPOINT ["qat"]
CMD ["--help"]
