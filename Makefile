# Install rtcore like any C library (docs/install.md):
#
#   make                                  # cargo build --release
#   make install PREFIX=/usr/local        # DESTDIR=... for staging
#   make uninstall PREFIX=/usr/local
#
# Installs the shared library (librtcore.so.VERSION, its soname link
# librtcore.so.0 and the link-time librtcore.so), the static library, the
# preload library of `rtcore run`, include/rtcore.h and rtcore.hpp, the `rtcore` command,
# a pkg-config file, a CMake package (rtcore::rtcore, rtcore::rtcore_static)
# and the docs. Binaries are installed stripped; their debug information
# goes beside each, into a .debug directory, where gdb looks for the file
# its .gnu_debuglink names.

PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR     ?= $(PREFIX)/bin
DOCDIR     ?= $(PREFIX)/share/doc/rtcore
DESTDIR    ?=
CARGO      ?= cargo
INSTALL    ?= install
OBJCOPY    ?= objcopy
STRIP      ?= strip

VERSION       := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
VERSION_MAJOR := $(word 1,$(subst ., ,$(VERSION)))
VERSION_MINOR := $(word 2,$(subst ., ,$(VERSION)))
REL           := target/release
# What Rust's standard library needs from the system when the static
# library is linked (rustc --print native-static-libs, x86-64 glibc).
NATIVE_LIBS   := -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc

D := $(DESTDIR)
# The CMake package's directory, and the paths from it back to the prefix.
CMAKEDIR := $(LIBDIR)/cmake/rtcore

.PHONY: all build install uninstall wheel
all: build

build:
	$(CARGO) build --release --lib --bin rtcore

# Install $(1) (a binary) as $(2), stripped, its debug information in
# .debug/ beside it.
define install_stripped
	$(INSTALL) -d $(dir $(2)).debug
	$(INSTALL) -m 755 $(1) $(2)
	$(OBJCOPY) --only-keep-debug $(2) $(dir $(2)).debug/$(notdir $(2)).debug
	chmod 644 $(dir $(2)).debug/$(notdir $(2)).debug
	$(STRIP) --strip-unneeded $(2)
	cd $(dir $(2)).debug && $(OBJCOPY) --add-gnu-debuglink=$(notdir $(2)).debug $(abspath $(2))
endef

install: build
	@test -n "$(VERSION)" || { echo "make: no version in Cargo.toml" >&2; exit 1; }
	@test -e $(REL)/librtcore_preload.so || { echo "make: $(REL)/librtcore_preload.so was not built (is a C compiler installed?)" >&2; exit 1; }
	$(INSTALL) -d $(D)$(LIBDIR) $(D)$(INCLUDEDIR) $(D)$(BINDIR) \
	  $(D)$(LIBDIR)/pkgconfig $(D)$(CMAKEDIR) $(D)$(DOCDIR)
	$(call install_stripped,$(REL)/librtcore.so,$(D)$(LIBDIR)/librtcore.so.$(VERSION))
	ln -sf librtcore.so.$(VERSION) $(D)$(LIBDIR)/librtcore.so.0
	ln -sf librtcore.so.0 $(D)$(LIBDIR)/librtcore.so
	$(INSTALL) -m 644 $(REL)/librtcore.a $(D)$(LIBDIR)/librtcore.a
	$(STRIP) --strip-debug $(D)$(LIBDIR)/librtcore.a
	$(call install_stripped,$(REL)/librtcore_preload.so,$(D)$(LIBDIR)/librtcore_preload.so)
	$(call install_stripped,$(REL)/rtcore,$(D)$(BINDIR)/rtcore)
	$(INSTALL) -m 644 include/rtcore.h $(D)$(INCLUDEDIR)/rtcore.h
	$(INSTALL) -m 644 include/rtcore.hpp $(D)$(INCLUDEDIR)/rtcore.hpp
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@VERSION@|$(VERSION)|g' \
	    -e 's|@NATIVE_LIBS@|$(NATIVE_LIBS)|g' \
	    packaging/rtcore.pc.in > $(D)$(LIBDIR)/pkgconfig/rtcore.pc
	sed -e 's|@CMAKE_TO_PREFIX@|$(shell realpath -m --relative-to=$(CMAKEDIR) $(PREFIX))|g' \
	    -e 's|@LIBDIR_REL@|$(shell realpath -m --relative-to=$(PREFIX) $(LIBDIR))|g' \
	    -e 's|@INCLUDEDIR_REL@|$(shell realpath -m --relative-to=$(PREFIX) $(INCLUDEDIR))|g' \
	    -e 's|@VERSION@|$(VERSION)|g' \
	    -e 's|@NATIVE_LIBS_CMAKE@|$(subst $(eval) ,;,$(patsubst -l%,%,$(NATIVE_LIBS)))|g' \
	    packaging/rtcoreConfig.cmake.in > $(D)$(CMAKEDIR)/rtcoreConfig.cmake
	sed -e 's|@VERSION@|$(VERSION)|g' -e 's|@VERSION_MAJOR@|$(VERSION_MAJOR)|g' \
	    -e 's|@VERSION_MINOR@|$(VERSION_MINOR)|g' \
	    packaging/rtcoreConfigVersion.cmake.in > $(D)$(CMAKEDIR)/rtcoreConfigVersion.cmake
	$(INSTALL) -m 644 README.md $(D)$(DOCDIR)/README.md
	cp -R docs/. $(D)$(DOCDIR)/
	@echo "rtcore $(VERSION) installed under $(D)$(PREFIX)"

# The Python package as a wheel carrying librtcore.so (one py3-none
# wheel for every CPython 3): target/wheels/.
wheel: build
	python3 -m pip wheel --no-deps -w target/wheels python/

uninstall:
	rm -f $(D)$(LIBDIR)/librtcore.so $(D)$(LIBDIR)/librtcore.so.0 \
	  $(D)$(LIBDIR)/librtcore.so.$(VERSION) $(D)$(LIBDIR)/librtcore.a \
	  $(D)$(LIBDIR)/librtcore_preload.so $(D)$(BINDIR)/rtcore \
	  $(D)$(INCLUDEDIR)/rtcore.h $(D)$(INCLUDEDIR)/rtcore.hpp $(D)$(LIBDIR)/pkgconfig/rtcore.pc \
	  $(D)$(LIBDIR)/.debug/librtcore.so.$(VERSION).debug \
	  $(D)$(LIBDIR)/.debug/librtcore_preload.so.debug $(D)$(BINDIR)/.debug/rtcore.debug
	-rmdir $(D)$(LIBDIR)/.debug $(D)$(BINDIR)/.debug 2>/dev/null
	rm -rf $(D)$(CMAKEDIR) $(D)$(DOCDIR)
