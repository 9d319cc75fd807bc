# Fuzz targets.  Each tests/fuzz/fuzz_NAME.c is linked with replay.c into
# tests/fuzz/replay_NAME, a `make check` test that replays the seed corpus
# tests/fuzz/corpus/NAME/; with --enable-fuzzing (CC=clang) it is also
# linked with libFuzzer into tests/fuzz/fuzz_NAME for real fuzzing:
#   ./tests/fuzz/fuzz_NAME -dict=../tests/fuzz/NAME.dict ../tests/fuzz/corpus/NAME
EXTRA_DIST += tests/fuzz/replay.c tests/fuzz/corpus tests/fuzz/README
noinst_PROGRAMS =
EXTRA_DIST += tests/fuzz/gen-targets.sh
include tests/fuzz/targets.mk
