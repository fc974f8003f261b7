# shellcheck shell=bash
# shellcheck disable=SC2154 # root, cache, buildroot, out, dl, python: set by check-buildroot
# Steps 2i and 2g of scripts/check-buildroot, sourced by it after step 2d
# (which fills $dl): the plugin package infrastructure's sdist builds and its
# refusal of an opt-in binary wheel that does not fit the target. Uses the
# check's variables (root, cache, buildroot, out, dl, python) and functions
# (step, step_end, ok, not_ok).

# The plugin macro's own commands for a plugin with a compiled requirement
# built from its sdist (ramp_writer: PyYAML 6.0.3 with libyaml), for aarch64
# and for armv7 hard float: BUILD_CMDS and INSTALL_TARGET_CMDS as Buildroot
# expands them (printvars), run with stand-ins for what a Buildroot build
# would have made: Debian's cross gcc (a wrapper adding --sysroot, as
# Buildroot's toolchain wrapper does) under the names TARGET_CROSS gives,
# the trixie sysroot of scripts/make-sysroot as staging (libyaml, the
# target's Python 3.13 and its sysconfigdata, unstaged: the macro's
# OPENPLC_PLUGIN_SYSCONFIGDATA_SYSROOT), a Python 3.13 as host-python3, and
# setuptools and Cython wheels for it (pinned below) in place of
# host-python-setuptools and host-python-cython. The venv's _yaml*.so must
# be code for the target (readelf: machine, ARM level and float ABI) linked
# to libyaml.
step "2i. the plugin's compiled requirement from its sdist: the macro's commands for aarch64 and armv7"
# printvar FILE VAR: VAR's value in printvars QUOTED_VARS=YES output.
printvar() {
    "$python" -c 'import shlex, sys
for t in shlex.split(open(sys.argv[1]).read()):
    k, _, v = t.partition("=")
    if k == sys.argv[2]:
        print(v)' "$1" "$2"
}
sdist_xy=3.13
build_py=''
for candidate in "python$sdist_xy" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$sdist_xy"*/bin/"python$sdist_xy"; do
    if [[ $("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) == "$sdist_xy" ]]; then
        build_py=$(command -v "$candidate")
        break
    fi
done
# Pinned build requirements for the stand-in host-python3 (its sha256 from
# fetch-target-wheels, checked here): Buildroot's are host packages.
build_wheels=$cache/build-wheels-cp${sdist_xy/./}
build_sums="062d34222ad13e0cc312a4c02d73f059e86a4acbfbdea8f8f76b28c99f306922  setuptools-80.9.0-py3-none-any.whl
c3f3bb603f28b3c1df66baaa5cdbf6029578552b458f1d321bae23b87f6c3199  cython-3.1.4-cp313-cp313-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl"
if [[ -z $build_py ]]; then
    not_ok "a Python $sdist_xy (trixie's) for the stand-in host-python3 (scripts/install-deps --cross)"
elif [[ $(uname -m) != x86_64 ]]; then
    not_ok "the pinned Cython wheel for the stand-in host-python3 is for x86_64 build hosts, not $(uname -m)"
elif ! { [[ -d $build_wheels ]] || {
        echo "# fetching setuptools and Cython for Python $sdist_xy once into $build_wheels (online)"
        printf 'setuptools==80.9.0\nCython==3.1.4\n' >"$cache/build-requirements.txt"
        "$root/scripts/fetch-target-wheels" --python-version "$sdist_xy" --build-python "$build_py" \
            --build-requirements "$cache/build-requirements.txt" --build-wheelhouse "$build_wheels.part" \
            --format sha256sum >/dev/null 2>"$cache/build-wheels.log" && mv -- "$build_wheels.part" "$build_wheels"; }; } ||
    ! (cd -- "$build_wheels" && sha256sum --quiet -c <<<"$build_sums") >>"$cache/build-wheels.log" 2>&1; then
    not_ok "setuptools and Cython wheels for Python $sdist_xy in $build_wheels" "$(tail -n 10 "$cache/build-wheels.log")"
else
    # (unquoted: the sdist tarball's file name, the plugin's package dir)
    a64_build=''
    for spec in "aarch64 aarch64-linux-gnu AArch64 ELF64" "armv7 arm-linux-gnueabihf ARM ELF32"; do
        read -r name triplet machine class <<<"$spec"
        o=$cache/check-out-sdist-$name
        rm -rf -- "$o"
        mkdir -p -- "$o"
        if [[ $name == aarch64 ]]; then
            cp -- "$out/.config" "$o/.config"
        else
            grep -v -e '^BR2_aarch64' -e '^BR2_ARCH' -e '^BR2_cortex' -e '^BR2_ARM' "$out/.config" >"$o/.config"
            printf '%s\n' BR2_arm=y BR2_cortex_a7=y BR2_ARM_EABIHF=y >>"$o/.config"
        fi
        log=$o/check.log
        sysroot=$("$root/scripts/make-sysroot" "$name" 2>>"$log") || sysroot=''
        if [[ -z $sysroot ]] || ! make -s -C "$buildroot" BR2_EXTERNAL="$root/buildroot" O="$o" olddefconfig >>"$log" 2>&1; then
            not_ok "$name: the sysroot (scripts/make-sysroot $name) and the configuration" "$(tail -n 10 "$log")"
            continue
        fi
        # The package's download (the sdist's hash checked) and extract
        # steps, once: the plugin's files and PyYAML's PKG-INFO and LICENSE.
        if [[ -z $a64_build ]]; then
            env http_proxy=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9 \
                make -s -C "$buildroot" O="$o" BR2_DL_DIR="$dl" BR2_BACKUP_SITE= BR2_PRIMARY_SITE= \
                BR2_TAR_HOST_DEPENDENCY= BR2_GZIP_HOST_DEPENDENCY= TAR=tar \
                openplc-plugin-ramp-writer-extract >>"$log" 2>&1 && a64_build=$o
        else
            mkdir -p -- "$o/build" && cp -a -- "$a64_build/build/openplc-plugin-ramp-writer-"* "$o/build/"
        fi
        host=$o/stand-in-host
        mkdir -p -- "$host/bin"
        ln -sf -- "$build_py" "$host/bin/python3"
        if ! make -s -C "$buildroot" O="$o" HOST_DIR="$host" STAGING_DIR="$sysroot" BR2_DL_DIR="$dl" \
            PYTHON3_VERSION="$sdist_xy.0" PYTHON3_VERSION_MAJOR="$sdist_xy" \
            OPENPLC_PLUGIN_SYSCONFIGDATA_SYSROOT="$sysroot" SOURCE_DATE_EPOCH=1700000000 TAR=tar \
            OPENPLC_PLUGIN_RAMP_WRITER_BUILD_WHEELS="$(find "$build_wheels" -maxdepth 1 -name '*.whl' -printf '%f ')" \
            PKG=OPENPLC_PLUGIN_RAMP_WRITER printvars QUOTED_VARS=YES \
            VARS='OPENPLC_PLUGIN_RAMP_WRITER_BUILD_CMDS OPENPLC_PLUGIN_RAMP_WRITER_INSTALL_TARGET_CMDS OPENPLC_PLUGIN_RAMP_WRITER_DIR TARGET_CROSS TARGET_DIR' \
            >"$o/vars.txt" 2>>"$log" || ! compgen -G "$o/build/openplc-plugin-ramp-writer-*/plugin.py" >/dev/null; then
            not_ok "$name: the package extracted, printvars" "$(tail -n 10 "$log")"
            continue
        fi
        cross=$(printvar "$o/vars.txt" TARGET_CROSS)
        for tool in gcc g++ cpp; do
            printf '#!/bin/sh\nexec %s-%s --sysroot=%s "$@"\n' "$triplet" "$tool" "$sysroot" >"$cross$tool"
            chmod +x -- "$cross$tool"
        done
        for tool in ar as ld nm ranlib readelf strip objcopy objdump gcc-ar gcc-nm gcc-ranlib; do
            ln -sf -- "$(command -v "$triplet-$tool" || echo /bin/false)" "$cross$tool"
        done
        for dl_wheel in "$build_wheels"/*.whl; do
            ln -sf -- "$dl_wheel" "$dl/openplc-plugin-ramp-writer/"
        done
        pkg_dir=$(printvar "$o/vars.txt" OPENPLC_PLUGIN_RAMP_WRITER_DIR)
        target_dir=$(printvar "$o/vars.txt" TARGET_DIR)
        for cmds in BUILD_CMDS INSTALL_TARGET_CMDS; do
            printvar "$o/vars.txt" "OPENPLC_PLUGIN_RAMP_WRITER_$cmds" | sed 's/^[[:space:]]*@//' >"$o/$cmds.sh"
            if (export SOURCE_DATE_EPOCH=1700000000; cd -- "$pkg_dir" && bash -eu "$o/$cmds.sh") >>"$log" 2>&1; then
                ok "$name: the package's $cmds ran"
            else
                not_ok "$name: the package's $cmds" "$(tail -n 25 "$log")"
                continue 2
            fi
        done
        wheel=$(cd -- "$pkg_dir/wheelhouse" && ls -- pyyaml-6.0.3-*.whl 2>/dev/null) || true
        so=$(find "$target_dir/usr/lib/openplc/venvs/ramp_writer" -name '_yaml*.so' 2>/dev/null | head -n 1) || true
        hdr=$(readelf -h "$so" 2>&1 || true)
        if [[ -n $so ]] && grep -q "Class:[[:space:]]*$class" <<<"$hdr" && grep -q "Machine:[[:space:]]*$machine\$" <<<"$hdr" &&
            readelf -d "$so" | grep -q 'NEEDED.*libyaml-0\.so\.2'; then
            ok "$name: $wheel built from the sdist, ${so##*/} in the venv is $class $machine code linked to libyaml"
        else
            not_ok "$name: the venv's _yaml*.so is $class $machine code linked to libyaml" "wheel: $wheel; so: ${so:-none}"$'\n'"$hdr"
        fi
        if [[ $name == armv7 ]]; then
            attrs=$(readelf -A "$so" 2>&1 || true)
            if grep -q 'hard-float ABI' <<<"$hdr" && grep -q 'Tag_CPU_arch: v7$' <<<"$attrs" &&
                grep -q 'Tag_ABI_VFP_args: VFP registers' <<<"$attrs"; then
                ok "armv7: ${so##*/} is ARMv7 code with the hard-float ABI (arguments in VFP registers)"
            else
                not_ok "armv7: ${so##*/} is ARMv7 hard-float code" "$attrs"
            fi
        fi
        installed=$(cd -- "$target_dir/usr/lib/openplc" 2>/dev/null && find plugins/ramp_writer plugins.conf.d | sort | tr '\n' ' ') || true
        wanted='plugins.conf.d plugins.conf.d/50-ramp_writer.conf plugins/ramp_writer plugins/ramp_writer/LICENSE plugins/ramp_writer/config.yaml plugins/ramp_writer/plugin.py '
        if [[ $installed == "$wanted" ]] && grep -q '^ramp_writer,' "$target_dir/usr/lib/openplc/plugins.conf.d/50-ramp_writer.conf"; then
            ok "$name: install-plugin installed the plugin's files and its drop-in, nothing of the build directory"
        else
            not_ok "$name: install-plugin installed the plugin's files and its drop-in, nothing of the build directory" \
                "got:    $installed"$'\n'"wanted: $wanted"
        fi
    done
fi
step_end "plugin sdists (aarch64, armv7)"

# An opt-in binary wheel that does not fit the target: PyPI's aarch64 PyYAML
# wheel (pinned in the ramp-writer .hash) opted in through _BINARY_WHEELS on
# an ARMv6 (arm1176jzf-s) soft-float target. The package's build commands,
# as Buildroot expands them, must refuse it naming the wheel and the file,
# before any venv is built. Without the opt-in the same target builds
# PyYAML from its sdist for armv6l soft float.
step "2g. an ARMv6 soft-float target: an opt-in wheel for another CPU is refused, the sdist built"
out_armv6=$cache/check-out-armv6
rm -rf -- "$out_armv6"
mkdir -p -- "$out_armv6"
grep -v -e '^BR2_aarch64' -e '^BR2_ARCH' -e '^BR2_cortex' -e '^BR2_ARM' "$out/.config" >"$out_armv6/.config"
printf '%s\n' BR2_arm=y BR2_arm1176jzf_s=y BR2_ARM_EABI=y >>"$out_armv6/.config"
a64_wheel=pyyaml-6.0.3-cp314-cp314-manylinux2014_aarch64.manylinux_2_17_aarch64.manylinux_2_28_aarch64.whl
a64_url=https://files.pythonhosted.org/packages/92/b5/47e807c2623074914e29dabd16cbbdd4bf5e9b2db9f8090fa64411fc5382/$a64_wheel
a64_sha=$(awk -v f="$a64_wheel" '$1 == "sha256" && $3 == f { print $2 }' \
    "$root/buildroot/package/openplc-plugin-ramp-writer/openplc-plugin-ramp-writer.hash")
mkdir -p -- "$dl/openplc-plugin-ramp-writer"
[[ -f $dl/openplc-plugin-ramp-writer/$a64_wheel ]] ||
    curl -sSfL -o "$dl/openplc-plugin-ramp-writer/$a64_wheel" "$a64_url" 2>"$cache/armv6.log" || true
if [[ -z $a64_sha || $(sha256sum "$dl/openplc-plugin-ramp-writer/$a64_wheel" 2>/dev/null | cut -d' ' -f1) != "$a64_sha" ]]; then
    not_ok "the aarch64 PyYAML wheel in $dl, with the .hash's sha256 (fetched once from PyPI)" "$(cat "$cache/armv6.log")"
elif make -s -C "$buildroot" BR2_EXTERNAL="$root/buildroot" O="$out_armv6" olddefconfig >>"$cache/armv6.log" 2>&1 &&
    make -s -C "$buildroot" O="$out_armv6" PKG=OPENPLC_PLUGIN_RAMP_WRITER BR2_DL_DIR="$dl" \
        printvars QUOTED_VARS=YES VARS='OPENPLC_PLUGIN_RAMP_WRITER_BUILD_CMDS' \
        >"$cache/make-output-armv6-sdist.txt" 2>>"$cache/armv6.log" &&
    make -s -C "$buildroot" O="$out_armv6" PKG=OPENPLC_PLUGIN_RAMP_WRITER BR2_DL_DIR="$dl" \
        OPENPLC_PLUGIN_RAMP_WRITER_SDISTS= OPENPLC_PLUGIN_RAMP_WRITER_BINARY_WHEELS=PyYAML \
        OPENPLC_PLUGIN_RAMP_WRITER_EXTRA_DOWNLOADS="$a64_url" \
        printvars QUOTED_VARS=YES VARS='OPENPLC_PLUGIN_RAMP_WRITER_BUILD_CMDS OPENPLC_PLUGIN_RAMP_WRITER_DIR' \
        >"$cache/make-output-armv6.txt" 2>>"$cache/armv6.log"; then
    if grep -q 'build-target-wheel --sdist [^ ]*/pyyaml-6.0.3.tar.gz .*--arch armv6l --float-abi soft ' \
        "$cache/make-output-armv6-sdist.txt"; then
        ok "ARMv6 soft float: PyYAML's sdist is built for armv6l, soft float"
    else
        not_ok "ARMv6 soft float: PyYAML's sdist is built for armv6l, soft float" "$(head -c 2000 "$cache/make-output-armv6-sdist.txt")"
    fi
    armv6_dir=$(printvar "$cache/make-output-armv6.txt" OPENPLC_PLUGIN_RAMP_WRITER_DIR)
    printvar "$cache/make-output-armv6.txt" OPENPLC_PLUGIN_RAMP_WRITER_BUILD_CMDS |
        sed 's/^[[:space:]]*@//' >"$out_armv6/BUILD_CMDS.sh"
    mkdir -p -- "$armv6_dir"
    if ! message=$(cd -- "$armv6_dir" && bash -eu "$out_armv6/BUILD_CMDS.sh" 2>&1) &&
        [[ $message == *"openplc-plugin-ramp-writer: $a64_wheel does not fit the target (arm arm1176jzf-s soft-float)"* &&
           $message == *"yaml/_yaml.cpython-314-aarch64-linux-gnu.so"* ]] && [[ ! -e $armv6_dir/wheelhouse ]]; then
        ok "ARMv6 soft float: the opt-in aarch64 wheel is refused: $(grep -m1 'does not fit' <<<"$message")"
    else
        not_ok "ARMv6 soft float: the opt-in aarch64 wheel is refused naming the wheel and the file" "${message:-it was accepted}"
    fi
else
    not_ok "olddefconfig/printvars for arm1176jzf-s soft float" "$(tail -n 20 "$cache/armv6.log")"
fi
step_end "ARMv6 opt-in wheel"
