#!/usr/bin/env bash
# Make the peer libraries' virtual environments the benchmarks compare against, each on its own:
# nanoGCG (pins transformers<=4.47.1), torchattacks, PyHessian. None of them downloads a second
# torch: a .pth file adds the project venv's site-packages after the peer venv's own packages.
set -euo pipefail
cd "$(dirname "$0")/.."
SP=$(.venv/bin/python -c 'import site; print(site.getsitepackages()[0])')
PYVER=$(.venv/bin/python -c 'import sys; print(f"python{sys.version_info[0]}.{sys.version_info[1]}")')

make_peer() {  # name, pip args...
  local name=$1; shift
  local dir=benchmarks/.venvs/$name
  if [ -x "$dir/bin/python" ] && [ -f "$dir/.ready" ]; then return; fi
  python3 -m venv "$dir"
  echo "import site; site.addsitedir('$SP')" > "$dir/lib/$PYVER/site-packages/main_venv.pth"
  "$dir/bin/pip" install -q "$@"
  touch "$dir/.ready"
}

make_peer nanogcg "transformers==4.47.1" "tokenizers>=0.21,<0.22" "huggingface_hub<1.0" nanogcg==0.3.0
make_peer torchattacks --no-deps torchattacks==3.5.1
make_peer pyhessian --no-deps pyhessian==0.1
