"""llama-cpp-python's own server (`python -m llama_cpp.server`, the same arguments), run as the
remote machine of the remote-engine tests, loading without weight repacking where this
llama.cpp build carries AMX kernels: those crash on this project's Xeon VMs (README,
Troubleshooting) in any program that repacks, this server included, which then dropped the
connection mid-reply. Hearth's worker loads the same way (runner.open_model)."""

from __future__ import annotations

import runpy

from desktop.engine_worker.runner import amx_kernels_compiled, default_params_override

if __name__ == "__main__":
    overrides = {"use_extra_bufts": False} if amx_kernels_compiled() else {}
    with default_params_override("llama_model_default_params", **overrides):
        runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
