# bench/bench.mk - the benchmark (issue 6): postern side by side with NGINX
# mail and a direct connection.  Never part of `make` or `make check`:
# the load generator and the fake backend are EXTRA_PROGRAMS, built only
# by `make bench` (which then runs bench/run against this build's postern).
#
#   make bench                        full run, updates docs/benchmarks.md
#   make bench BENCH_FLAGS=--quick    under 3 minutes
#   make bench BENCH_FLAGS=--smoke    seconds; what CI runs
EXTRA_PROGRAMS = bench/loadgen bench/fakebackend
bench_loadgen_SOURCES = bench/loadgen.c
bench_loadgen_LDADD = $(GNUTLS_LIBS) -lm $(LIBS)
bench_fakebackend_SOURCES = bench/fakebackend.c
bench_fakebackend_LDADD = $(GNUTLS_LIBS) $(LIBS)
EXTRA_DIST += bench/run docs/benchmarks.md
CLEANFILES += $(EXTRA_PROGRAMS)

BENCH_FLAGS =
bench: postern$(EXEEXT) $(EXTRA_PROGRAMS)
	$(top_srcdir)/bench/run --postern $(abs_top_builddir)/postern$(EXEEXT) \
	    --tools $(abs_top_builddir)/bench $(BENCH_FLAGS)
.PHONY: bench
