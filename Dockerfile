# Two images from one file:
#   docker build --target predictor  -t predictor .
#   docker build --target auth-proxy -t auth-proxy .
# BASE_IMAGE: any Debian-based image with Python 3.11 and its venv module (python3 -m venv).
# Written for Docker's classic builder too: no BuildKit-only syntax.
ARG BASE_IMAGE=docker.io/library/python:3.11-slim-bookworm

# -- dependencies, installed into a venv that the final stages copy whole -----------------------
FROM ${BASE_IMAGE} AS venv
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/venv

# build-ca/ca.crt, when tools/build_images.sh puts it there, is the build machine's CA bundle
# (a TLS-inspecting proxy's CA): pip trusts it here, in the build stages only; the final
# stages start afresh from BASE_IMAGE, so it never reaches an image's trust store. The
# Dockerfile's own file is named too, so the COPY works when build-ca/ is absent.
FROM venv AS auth-proxy-deps
COPY Dockerfile build-ca* /tmp/build-ca/
COPY auth-proxy/ /tmp/auth-proxy/
RUN if [ -f /tmp/build-ca/ca.crt ]; then export PIP_CERT=/tmp/build-ca/ca.crt; fi \
    && /opt/venv/bin/pip install --no-cache-dir -c /tmp/auth-proxy/constraints.txt /tmp/auth-proxy

# -- what both images share: a non-root user that also works under OpenShift's arbitrary UID --
FROM ${BASE_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/app
# OpenShift runs the container as a random UID in group 0: what it writes must be group-0
# writable. The manifests mount emptyDirs over /tmp and /var/cache/models anyway.
RUN mkdir -p /home/app /var/cache/models \
    && chgrp -R 0 /home/app /var/cache/models \
    && chmod -R g=u /home/app /var/cache/models
WORKDIR /app
USER 1001

FROM runtime AS auth-proxy
COPY --from=auth-proxy-deps /opt/venv /opt/venv
EXPOSE 9080 9081 9082
ENTRYPOINT ["python3", "-m", "auth_proxy"]

# Stages in the order Docker's classic builder needs: it builds every stage before the
# target, so the proxy's image never waits for TensorFlow.
FROM venv AS predictor-deps
COPY Dockerfile build-ca* /tmp/build-ca/
COPY predictor/requirements.txt predictor/constraints.txt /tmp/predictor/
RUN if [ -f /tmp/build-ca/ca.crt ]; then export PIP_CERT=/tmp/build-ca/ca.crt; fi \
    && /opt/venv/bin/pip install --no-cache-dir \
        -r /tmp/predictor/requirements.txt -c /tmp/predictor/constraints.txt

FROM runtime AS predictor
COPY --from=predictor-deps /opt/venv /opt/venv
COPY predictor/ /app/predictor/
ENV MODEL_CACHE_DIR=/var/cache/models
EXPOSE 8080 8081
ENTRYPOINT ["python3", "-m", "predictor"]
