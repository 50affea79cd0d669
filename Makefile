# fiftyx — make (build), make check (tests), make bench (the main job), make plot, make report,
# make gpu-bundle (for tools/gpu-session), make clean.
# Honours CC, CFLAGS, LDFLAGS, NVCC, NVCCFLAGS, CUDA_ARCH; SANITIZE=1 builds with ASan+UBSan
# into build/san. CUDA is autodetected (nvcc on PATH or in /usr/local/cuda); without it the
# build is CPU-only. Missing libraries are installed by tools/install-deps; OPENBLAS=0 builds
# without the optional OpenBLAS baseline.

ifeq ($(origin CC),default)
CC := gcc
endif
CFLAGS ?= -O3 -g
NVCC ?= $(shell command -v nvcc 2>/dev/null || { [ -x /usr/local/cuda/bin/nvcc ] && echo /usr/local/cuda/bin/nvcc; })
NVCCFLAGS ?= -O3 -lineinfo
CUDA_ARCH ?= sm_90
BUILD ?= build

ifeq ($(SANITIZE),1)
override BUILD := $(BUILD)/san
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif

# Required: hwloc, jansson (and gnuplot, python3 for the tools). OpenBLAS, the `openblas`
# baseline, is optional like CUDA: OPENBLAS=0 (or no, off, empty) builds without it, and so does a
# machine where tools/install-deps could not install it (tried once: $(BUILD)/openblas-not-installed
# records the failure; `make clean` forgets it). The backend is then listed as not in this build.
FX_PKGS := hwloc jansson
FX_HAVE_REQUIRED = $(shell pkg-config --exists $(FX_PKGS) 2>/dev/null && command -v gnuplot >/dev/null && command -v python3 >/dev/null && echo ok)
ifeq ($(origin OPENBLAS),undefined)
FX_WANT_OPENBLAS := $(if $(wildcard $(BUILD)/openblas-not-installed),0,1)
else
FX_WANT_OPENBLAS := $(if $(filter 0 no off NO OFF,$(or $(strip $(OPENBLAS)),0)),0,1)
endif

# Install missing libraries before anything is compiled (not for `make clean`).
ifneq ($(filter-out clean,$(or $(MAKECMDGOALS),all)),)
ifneq ($(FX_HAVE_REQUIRED)$(if $(filter 1,$(FX_WANT_OPENBLAS)),$(shell pkg-config --exists openblas 2>/dev/null || echo -openblas)),ok)
$(info fiftyx: missing libraries or tools; running tools/install-deps)
ifneq ($(shell FX_NO_OPENBLAS=$(if $(filter 1,$(FX_WANT_OPENBLAS)),,1) tools/install-deps 1>&2; echo $$?),0)
ifneq ($(FX_HAVE_REQUIRED),ok)
$(error tools/install-deps failed: install the packages it names, then run make again)
endif
endif
endif
endif

ifeq ($(FX_WANT_OPENBLAS),1)
ifeq ($(origin OPENBLAS),undefined)
override OPENBLAS := $(shell pkg-config --exists openblas 2>/dev/null && echo 1 || echo 0)
ifeq ($(OPENBLAS),0)
ifneq ($(filter-out clean,$(or $(MAKECMDGOALS),all)),)
$(shell mkdir -p $(BUILD) && touch $(BUILD)/openblas-not-installed)
$(info fiftyx: OpenBLAS is still missing after tools/install-deps: building without the openblas baseline)
endif
endif
else
override OPENBLAS := 1
endif
else
override OPENBLAS := 0
endif
ifeq ($(OPENBLAS),0)
FX_ALL_PKGS := $(FX_PKGS)
else
FX_ALL_PKGS := $(FX_PKGS) openblas
endif
PKG_CFLAGS := $(shell pkg-config --cflags $(FX_ALL_PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(FX_ALL_PKGS) 2>/dev/null)

ALL_CFLAGS := -std=gnu11 -fopenmp -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -MMD -MP $(PKG_CFLAGS) \
	$(SAN) -DFX_SOURCE_DIR='"$(CURDIR)"' -DFX_CFLAGS='"$(CFLAGS) $(SAN)"' $(CFLAGS)
ALL_LDFLAGS := -fopenmp $(SAN) $(LDFLAGS)
LIBS := $(PKG_LIBS) -lm

# Micro-kernels per ISA: the file name says which instructions it may use; the rest of the
# binary is plain x86-64 and chooses at run time (CPUID), so one build runs on any x86-64.
AVX512_FLAGS := -mavx512f -mavx512vl -mavx512bw -mavx512dq -mfma -mavx2
AVX2_FLAGS := -mavx2 -mfma

C_SRCS := $(wildcard harness/*.c reference/*.c kernels/*.c kernels/cpu/*.c kernels/baselines/*.c)
# programs of their own: make sparse-sweep, make load-cost
C_SRCS := $(filter-out kernels/cpu/sparse_sweep.c kernels/cpu/load_cost.c,$(C_SRCS))
ifeq ($(OPENBLAS),0)
C_SRCS := $(filter-out kernels/baselines/openblas.c,$(C_SRCS))
endif
CU_SRCS :=
ifneq ($(NVCC),)
CUDA_HOME := $(patsubst %/bin/nvcc,%,$(NVCC))
CU_SRCS := $(wildcard kernels/cuda/*.cu kernels/baselines/*.cu harness/*.cu)
C_SRCS := $(filter-out kernels/no_gpu.c harness/peaks_nogpu.c,$(C_SRCS))
NVCC_VERSION := $(shell $(NVCC) --version 2>/dev/null | grep -o 'release [0-9.]*, V[0-9.]*')
ALL_CFLAGS += -DFX_HAVE_CUDA -DFX_NVCC='"$(NVCC_VERSION) -arch=$(CUDA_ARCH) $(NVCCFLAGS)"'
ALL_NVCCFLAGS := -std=c++17 -arch=$(CUDA_ARCH) -DFX_HAVE_CUDA -MMD -MP -Xcompiler -Wall $(NVCCFLAGS)
LIBS += -L$(CUDA_HOME)/lib64 -lcublas -lcudart_static -ldl -lrt -lpthread -lstdc++
endif

OBJS := $(C_SRCS:%.c=$(BUILD)/obj/%.o) $(CU_SRCS:%.cu=$(BUILD)/obj/%.cu.o)

.PHONY: all check check-emu bench plot report gpu-bundle clean sparse-sweep load-cost
all: $(BUILD)/fiftyx
ifeq ($(NVCC),)
	@echo "fiftyx: nvcc not found: CPU-only build (the cuda, cublas and cuda-persistent backends are not built)"
endif
ifeq ($(OPENBLAS),0)
	@echo "fiftyx: built without OpenBLAS (the openblas backend is not built)$(if $(wildcard $(BUILD)/openblas-not-installed),; once it is installed run make OPENBLAS=1 (or remove $(BUILD)/openblas-not-installed))"
endif

# Everything is rebuilt when the configuration changes (a CPU-only `make NVCC=` into the same
# folder, other flags): objects and binary depend on this file, rewritten only when it differs.
FX_CONFIG := $(CC) | $(CFLAGS) | $(LDFLAGS) | $(NVCC) | $(NVCCFLAGS) | $(CUDA_ARCH) | $(SAN) | openblas $(OPENBLAS)
$(BUILD)/config: FORCE
	@mkdir -p $(@D)
	@echo '$(FX_CONFIG)' | cmp -s - $@ || echo '$(FX_CONFIG)' >$@

.PHONY: FORCE
FORCE:

$(OBJS): $(BUILD)/config

$(BUILD)/fiftyx: $(OBJS) $(BUILD)/config
	$(CC) $(ALL_LDFLAGS) -o $@ $(OBJS) $(LIBS)

$(BUILD)/obj/%_avx512.o: %_avx512.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(AVX512_FLAGS) -c -o $@ $<

$(BUILD)/obj/%_avx2.o: %_avx2.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(AVX2_FLAGS) -c -o $@ $<

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/obj/%.cu.o: %.cu
	@mkdir -p $(@D)
	$(NVCC) $(ALL_NVCCFLAGS) -c -o $@ $<

# The sparse w1ᵀ update against the dense GEMM over densities (kernels/cpu/NOTES.md, entry 31).
CPU_OBJS := $(filter $(BUILD)/obj/kernels/cpu/%,$(OBJS)) $(BUILD)/obj/kernels/common.o \
	$(BUILD)/obj/harness/peak_fma_avx512.o
sparse-sweep: $(BUILD)/sparse-sweep
$(BUILD)/sparse-sweep: kernels/cpu/sparse_sweep.c $(CPU_OBJS)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(CPU_OBJS) -lm

# What loads from L1 cost the FMA rate (kernels/cpu/NOTES.md, entry 32).
load-cost: $(BUILD)/load-cost
$(BUILD)/load-cost: kernels/cpu/load_cost.c
	@mkdir -p $(BUILD)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $<

check: $(BUILD)/fiftyx
	$(BUILD)/fiftyx check $(CHECK_ARGS)

# The CUDA kernels' source run on a CPU emulator of CUDA (g++ only, no GPU): index math, bounds,
# barriers and cross-block protocols, checked against double references (~3-4 min).
check-emu:
	kernels/cuda/emu/run --quick

bench: $(BUILD)/fiftyx
	$(BUILD)/fiftyx bench $(BENCH_ARGS)

plot:
	tools/plot results/*.json

# What a lent GPU machine needs from here (tools/gpu-session; carry build/fiftyx, build/lib,
# build/GIT_SHA): the binary, copies of the libraries that machine lacks, and the commit it is.
gpu-bundle: $(BUILD)/fiftyx
	@test -n "$(NVCC)" || { echo "gpu-bundle: no nvcc here: this build has no CUDA backends to carry" >&2; exit 1; }
	tools/bundle-libs $(BUILD)/fiftyx $(BUILD)/lib
	{ git rev-parse --short=12 HEAD && test -z "$$(git status --porcelain --untracked-files=no)" || echo dirty; } \
		| paste -sd- >$(BUILD)/GIT_SHA.tmp && mv -f $(BUILD)/GIT_SHA.tmp $(BUILD)/GIT_SHA
	@echo "gpu-bundle: carry $(BUILD)/fiftyx $(BUILD)/lib $(BUILD)/GIT_SHA ($$(du -shc $(BUILD)/fiftyx $(BUILD)/lib | tail -1 | cut -f1)); run tools/gpu-session"

report: plot
	tools/report

clean:
	rm -rf $(BUILD)

-include $(OBJS:.o=.d)
