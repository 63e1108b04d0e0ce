# tapegrad's C library on its own: no Python needed.
#
#   make                         build/c/lib/libtapegrad.so (+ soname link) and libtapegrad.a
#   make install PREFIX=/usr/local [DESTDIR=...]
#                                PREFIX/include/tapegrad.h, PREFIX/lib/libtapegrad.{so,a},
#                                PREFIX/lib/pkgconfig/tapegrad.pc,
#                                PREFIX/lib/cmake/tapegrad/ (find_package(tapegrad))
#   make examples                the C examples in examples/c/, linked against build/c/lib
#   make check                   build and run them (but xor_infer, which needs weights)
#   make clean
#
# Then:  cc prog.c $(pkg-config --cflags --libs tapegrad)
#   or, in CMake:  find_package(tapegrad 0.1 REQUIRED) + target_link_libraries(prog tapegrad::tapegrad)
# Portable flags only (no -march=native, no -ffast-math): the SIMD kernels choose their
# instruction set at run time.

CC       ?= cc
AR       ?= ar
PREFIX   ?= /usr/local
DESTDIR  ?=
BUILD    ?= build/c
CFLAGS   ?= -O3
# -ffp-contract=off: no a*b + c fused unless the code says fma (the same bits on every
# compiler and architecture; see setup.py)
TG_CFLAGS = -std=c11 -Wall -Wextra -D_POSIX_C_SOURCE=200809L -pthread -fno-math-errno \
            -ffp-contract=off -fPIC \
            -Icsrc/include -Icsrc
LDLIBS    = -lm -pthread

HEADER  := csrc/include/tapegrad.h
field    = $(shell sed -n 's/^\#define TG_VERSION_$(1) \([0-9][0-9]*\).*/\1/p' $(HEADER))
MAJOR   := $(call field,MAJOR)
MINOR   := $(call field,MINOR)
PATCH   := $(call field,PATCH)
VERSION := $(MAJOR).$(MINOR).$(PATCH)
# While the major version is 0, every minor release may break the ABI (see README).
SONAME  := libtapegrad.so.$(if $(filter 0,$(MAJOR)),0.$(MINOR),$(MAJOR))

SOURCES := $(sort $(wildcard csrc/*.c csrc/*/*.c))
OBJECTS := $(patsubst csrc/%.c,$(BUILD)/obj/%.o,$(SOURCES))
LIBDIR  := $(BUILD)/lib
SHARED  := $(LIBDIR)/libtapegrad.so.$(VERSION)
STATIC  := $(LIBDIR)/libtapegrad.a
EXAMPLES := $(patsubst examples/c/%.c,$(BUILD)/examples/%,$(wildcard examples/c/*.c))

.PHONY: all install examples check clean
all: $(SHARED) $(LIBDIR)/libtapegrad.so $(STATIC)

$(BUILD)/obj/%.o: csrc/%.c $(wildcard csrc/*.h csrc/*/*.h) $(HEADER)
	@mkdir -p $(dir $@)
	$(CC) $(TG_CFLAGS) $(CFLAGS) -c $< -o $@

# Only the functions declared in tapegrad.h are exported (the list is read from the
# preprocessed header, so it cannot drift); everything else stays internal.
$(BUILD)/tapegrad.map: $(HEADER)
	@mkdir -p $(dir $@)
	{ echo '{ global:'; $(CC) -E -P -x c $(HEADER) | grep -o 'tg_[a-z0-9_]*[[:space:]]*(' \
	  | sed 's/[[:space:]]*($$/;/' | sort -u; echo 'local: *; };'; } > $@

$(SHARED): $(OBJECTS) $(BUILD)/tapegrad.map
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--version-script,$(BUILD)/tapegrad.map \
	  $(LDFLAGS) -o $@ $(OBJECTS) $(LDLIBS)

$(LIBDIR)/libtapegrad.so: $(SHARED)
	ln -sf libtapegrad.so.$(VERSION) $(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $@

$(STATIC): $(OBJECTS)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $(OBJECTS)

install: all
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 $(HEADER) $(DESTDIR)$(PREFIX)/include/tapegrad.h
	install -m 755 $(SHARED) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libtapegrad.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(PREFIX)/lib/libtapegrad.so
	install -m 644 $(STATIC) $(DESTDIR)$(PREFIX)/lib/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' -e 's|@RPATH@||' \
	  pkgconfig/tapegrad.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/tapegrad.pc
	install -d $(DESTDIR)$(PREFIX)/lib/cmake/tapegrad
	for f in tapegradConfig tapegradConfigVersion; do \
	  sed -e 's|@VERSION@|$(VERSION)|' -e 's|@MAJOR@|$(MAJOR)|' -e 's|@MINOR@|$(MINOR)|' \
	      -e 's|@SONAME@|$(SONAME)|' -e 's|@SHARED_FILE@|libtapegrad.so.$(VERSION)|' \
	      cmake/$$f.cmake.in > $(DESTDIR)$(PREFIX)/lib/cmake/tapegrad/$$f.cmake; done

$(BUILD)/examples/%: examples/c/%.c $(wildcard examples/c/*.h) all
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O2 -Wall -Wextra -D_POSIX_C_SOURCE=200809L -Icsrc/include $< -o $@ \
	  -L$(LIBDIR) -Wl,-rpath,$(abspath $(LIBDIR)) -ltapegrad -lm -pthread

examples: $(EXAMPLES)

# (xor_infer needs weights saved from Python: tests/test_c_library.py runs it)
check: examples
	@set -e; for e in $(abspath $(filter-out %/xor_infer,$(EXAMPLES))); do echo "== $$e"; $$e; done

clean:
	rm -rf $(BUILD)
