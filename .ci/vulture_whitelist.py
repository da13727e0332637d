"""Names vulture (the lint step's dead-code finder) reports as unused although they are used,
by something it cannot follow. Listing a name here counts as a use; each says who uses it.
This file is parsed by vulture, never run (hence the per-file ruff ignores in pyproject)."""

# bmm/estep.py: the E-step variants. @_register puts each in estep.VARIANTS, and every caller
# (the config's variant lists, the fit and timing jobs, the tests) takes them from there by
# name, never by the function's own name.
loops_ndk_as_published
loops_nk
loops_n
matmul_as_published
matmul_fused_f32
numba_ndk
numba_simd

# tests/conftest.py, the test mirror: http.server calls the handler's do_GET for each GET and
# its log_message to log (overridden to keep the test output quiet); socketserver reads the
# server's daemon_threads and block_on_close.
_.do_GET
_.log_message
_.daemon_threads
_.block_on_close

# pytest fixtures requested by name, not called: real_run by the `run` fixture
# (request.getfixturevalue), not_installed by the tests that need its monkeypatch (an
# argument they never read); pytestmark, the marks pytest reads from a test module.
real_run
not_installed
pytestmark

# tests/test_report.py: Selenium reads ChromeOptions.binary_location to start Chromium.
_.binary_location

# bmm/scale.py: measure runs in a fresh Python process, named in the code it is given
# (scale.in_child).
measure
