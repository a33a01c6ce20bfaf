# tf_crnn in a container: the entry point is the tf-crnn command.
#   CPU: docker build -t tf-crnn .
#   GPU: docker build -t tf-crnn:gpu --build-arg EXTRAS=gpu,serve,report,export .
#        (TensorFlow's CUDA wheels come with the gpu extra; the host needs the NVIDIA driver
#        and the NVIDIA container toolkit: docker run --gpus all ...)
FROM python:3.11-slim

ARG EXTRAS=serve,report,export
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2

WORKDIR /opt/tf_crnn
COPY pyproject.toml README.md ./
COPY tf_crnn ./tf_crnn
# The project itself, whose pyproject.toml bounds its dependencies (DL3013 asks for pins).
# hadolint ignore=DL3013
RUN pip install ".[${EXTRAS}]"

# Data and models are mounted here: docker run -v "$PWD:/work" tf-crnn train config.json
WORKDIR /work
# tf-crnn serve MODEL --host 0.0.0.0 (with an API key: TF_CRNN_API_KEY); see deploy/serving.yaml.
EXPOSE 8080
ENTRYPOINT ["tf-crnn"]
CMD ["--help"]
