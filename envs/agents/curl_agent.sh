#!/bin/sh
# A shell agent using curl: one chat call with the task read from stdin; prints the model's answer.
# Needs OPENAI_BASE_URL, OPENAI_API_KEY and OPENAI_MODEL; uses jq when installed, else python3, for JSON.
set -eu
task=$(cat)
system='Answer the question. Give only the final answer inside \boxed{}.'
if command -v jq >/dev/null 2>&1; then
    body=$(jq -n --arg m "$OPENAI_MODEL" --arg s "$system" --arg t "$task" \
        '{model: $m, messages: [{role: "system", content: $s}, {role: "user", content: $t}]}')
    answer() { jq -r '.choices[0].message.content // ""'; }
else
    body=$(python3 -c 'import json,sys; print(json.dumps({"model": sys.argv[1], "messages": [
        {"role": "system", "content": sys.argv[2]}, {"role": "user", "content": sys.argv[3]}]}))' \
        "$OPENAI_MODEL" "$system" "$task")
    answer() { python3 -c 'import json,sys; print(json.load(sys.stdin)["choices"][0]["message"]["content"] or "")'; }
fi
# --fail-with-body: an HTTP error from the server is an error exit with its body on stderr
reply=$(curl -sS --fail-with-body --max-time 300 "$OPENAI_BASE_URL/chat/completions" \
    -H "Authorization: Bearer $OPENAI_API_KEY" -H "Content-Type: application/json" -d "$body") || {
    echo "curl_agent: the model call failed: $reply" >&2
    exit 2
}
printf '%s\n' "$reply" | answer
