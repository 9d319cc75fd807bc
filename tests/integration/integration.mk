# tests/integration/integration.mk: pytest files run through run-pytest
# (PY_LOG_COMPILER in Makefile.am) and reported as TAP by tap_plugin.py.
TESTS += \
	tests/integration/test_dovecot_fixture.py \
	tests/integration/test_process.py \
	tests/integration/test_smoke.py

EXTRA_DIST += \
	tests/integration/run-pytest \
	tests/integration/tap_plugin.py \
	tests/integration/conftest.py \
	tests/integration/harness.py \
	tests/integration/authsvc.py \
	tests/integration/dnsstub.py \
	tests/integration/test_dovecot_fixture.py \
	tests/integration/test_process.py \
	tests/integration/test_smoke.py \
	tests/setup-debian.sh \
	demo/run
TESTS += tests/integration/test_smtp.py
EXTRA_DIST += tests/integration/test_smtp.py
TESTS += tests/integration/test_client_addr.py
EXTRA_DIST += tests/integration/test_client_addr.py
EXTRA_DIST += tests/integration/smtp_util.py
TESTS += tests/integration/test_imap.py
EXTRA_DIST += tests/integration/test_imap.py tests/integration/imap_util.py
TESTS += tests/integration/test_tls.py
EXTRA_DIST += tests/integration/test_tls.py tests/integration/tls_util.py
TESTS += tests/integration/test_pop3.py tests/integration/test_auth_service.py
EXTRA_DIST += tests/integration/test_pop3.py tests/integration/test_auth_service.py tests/integration/pop3_util.py
TESTS += tests/integration/test_lifecycle.py
EXTRA_DIST += tests/integration/test_lifecycle.py tests/integration/nss_wrapper.tsan.supp
TESTS += tests/integration/test_valgrind.py
EXTRA_DIST += tests/integration/test_valgrind.py
TESTS += tests/integration/test_install.py
EXTRA_DIST += tests/integration/test_install.py
