# The Firebreak worker and API (one image; the command picks the role).
#
#   docker build -t firebreak .
#   docker run firebreak                      # python worker.py (both task queues)
#   docker run firebreak python worker.py --role incident   # or --role memory: one each
#   docker run firebreak python -m api        # the webhook API
#
# Configuration is all environment: TEMPORAL_ADDRESS (and the SDK's other envconfig
# variables) and FIREBREAK_* (see .env.example). docker-compose.yml shows a full stack.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# ssh: Ansible reaches remote targets over SSH; the bundled demo playbooks run locally.
RUN apt-get update \
    && apt-get install -y --no-install-recommends openssh-client \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --create-home --home-dir /home/firebreak firebreak \
    && mkdir -p /var/lib/firebreak /run/firebreak \
    && chown firebreak:firebreak /var/lib/firebreak /run/firebreak

WORKDIR /app
COPY . .
# The code runs from /app (so playbooks/, policies/ and agents/rules.yaml sit next to it);
# installing the project brings its pinned dependencies.
RUN pip install . && rm -rf build *.egg-info

USER firebreak
ENV FIREBREAK_DATA_DIR=/var/lib/firebreak
EXPOSE 8000
CMD ["python", "worker.py"]
