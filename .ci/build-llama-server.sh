#!/usr/bin/env bash
# Builds llama-server (CPU only) from the llama.cpp source that node-llama-cpp ships
# (node_modules/node-llama-cpp/llama/gitRelease.bundle) into a cache folder outside
# the clone, so a machine that built it once skips the ~6 minutes next time.
# Prints the binary's path on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=node_modules/node-llama-cpp/llama/gitRelease.bundle
COMMIT=$(git bundle list-heads "$BUNDLE" | awk '{print $1; exit}')
CACHE="${LABGATE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/labgate}"
OUT="$CACHE/llama-server-${COMMIT:0:12}"
if [ -x "$OUT/bin/llama-server" ]; then
  echo "$OUT/bin/llama-server"
  exit 0
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
git clone -q --no-checkout "$BUNDLE" "$WORK/llama.cpp"
git -C "$WORK/llama.cpp" checkout -q "$COMMIT"
cmake -S "$WORK/llama.cpp" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release \
  -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
  -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF >"$WORK/cmake.log" 2>&1 || { tail -40 "$WORK/cmake.log" >&2; exit 1; }
cmake --build "$WORK/build" --target llama-server -j"$(nproc)" >"$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log" >&2; exit 1; }
mkdir -p "$OUT/bin"
cp "$WORK/build/bin/llama-server" "$OUT/bin/llama-server.tmp"
mv "$OUT/bin/llama-server.tmp" "$OUT/bin/llama-server"
echo "$OUT/bin/llama-server"
