#!/usr/bin/env bash
# curl (and jq) for the shipped shell agent envs/agents/curl_agent.sh, which BlackBoxEnv tests run as a real
# program. Idempotent: installs only what is missing (apt caches the packages).
set -euo pipefail
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo  # .ci/run works as a user in a venv too
need=()
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v jq >/dev/null 2>&1 || need+=(jq)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
curl --version | head -1
