#!/usr/bin/env bash
# Regenerates the Go code of proto/ with pinned tool versions, and lints it.
#
#   scripts/genproto.sh          lint and regenerate
#   scripts/genproto.sh --check  also fail if the committed code differs
#
# The tools are installed into .bin/ (git-ignored) through the Go module proxy.
set -euo pipefail
cd "$(dirname "$0")/.."

BUF_VERSION=v1.75.0
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2

bin="$PWD/.bin"
mkdir -p "$bin"
install() { # name module version
  local stamp="$bin/.$1-$3"
  if [ ! -x "$bin/$1" ] || [ ! -f "$stamp" ]; then
    echo "installing $1 $3" >&2
    GOBIN="$bin" go install "$2@$3"
    rm -f "$bin/.$1-"*
    touch "$stamp"
  fi
}
install buf github.com/bufbuild/buf/cmd/buf "$BUF_VERSION"
install protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go "$PROTOC_GEN_GO_VERSION"
install protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc "$PROTOC_GEN_GO_GRPC_VERSION"
export PATH="$bin:$PATH"

buf lint
buf format --diff --exit-code
find proto -name '*.pb.go' -delete
buf generate

if [ "${1:-}" = "--check" ]; then
  if [ -n "$(git status --porcelain -- proto)" ]; then
    git status --short -- proto >&2
    git --no-pager diff --stat -- proto >&2
    echo "generated code in proto/ differs from the .proto files: run scripts/genproto.sh and commit" >&2
    exit 1
  fi
fi
