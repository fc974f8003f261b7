#!/usr/bin/env bash
# Creates and inspects the per-plugin venvs of a development machine, with the
# commands of the OpenPLC venv guide (docs: seed/venv-guide.md). Unlike OpenPLC's
# script it never prompts without a terminal, lists every venv, and builds each
# venv with the Python X.Y the runtime embeds (a venv of another X.Y does not
# import). Firmware images do not use this: they use scripts/build-target-venv.
set -euo pipefail

prog=manage_plugin_venvs.sh
script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname -- "$script_dir")

usage() {
    cat <<EOF
Usage: scripts/$prog [OPTIONS] COMMAND [NAME] [OPTIONS]

Commands:
  create NAME    create venvs/NAME with the runtime's Python and install the
                 plugin's requirements.txt; an existing venv of the right Python
                 is kept (its requirements are brought up to date); prints the
                 plugins.conf line to use
  install NAME   install the plugin's requirements.txt into its venv (creates the
                 venv first if there is none); safe to run again
  list           list every venv, its Python and whether it matches the runtime
  remove NAME    delete the venv (asks on a terminal; else needs --yes)
  info NAME      the venv's Python, whether it matches the runtime, its packages
  help           this text (also -h, --help)

Options (before or after the command):
  --config FILE        plugins.conf to find NAME's plugin in (default: \$OPENPLC_CONFIG,
                       else <project>/plugins.conf if it exists)
  --venvs-dir DIR      where venvs live (default: \$OPENPLC_VENVS_DIR, else <project>/venvs)
  --requirements FILE  requirements to install (create, install)
  --python PATH        create the venv with this interpreter (must be the runtime's X.Y)
  --runtime PATH       the openplc-runtime binary to ask for its Python (default:
                       \$OPENPLC_RUNTIME, else target/{release,debug}/openplc-runtime,
                       else openplc-runtime on PATH)
  --recreate           create: delete an existing venv and build it again
  --dropin DIR         create: also write the plugin's line, with absolute paths,
                       as the drop-in DIR/50-NAME.conf (e.g. /etc/openplc/plugins.conf.d
                       or /var/lib/openplc/plugins.conf.d; the runtime reads
                       drop-ins besides plugins.conf), instead of editing plugins.conf
  -y, --yes            confirm deleting (remove, create --recreate) without asking

A plugin's requirements.txt is, in this order: --requirements FILE; next to the
plugin file named on NAME's line in plugins.conf; <project>/plugins/NAME/,
<project>/examples/plugins/NAME/ or OpenPLC's core/src/drivers/plugins/python/NAME/.

The venv is made with the Python the runtime embeds (\`openplc-runtime python-info\`);
when there is no runtime binary yet, with python3 and a warning: check it later
with \`info NAME\`.

Exit codes:
  0  done
  1  a tool failed (python -m venv, pip)
  2  usage error (unknown command or option, bad NAME)
  3  not found: venv, requirements, plugins.conf, interpreter or runtime given
  4  not confirmed: deleting needs --yes when there is no terminal to ask on
  5  Python mismatch: the venv is not the runtime's X.Y, or no such Python here
EOF
}

die() {
    local code=$1
    shift
    printf '%s: error: %s\n' "$prog" "$*" >&2
    exit "$code"
}

warn() { printf '%s: warning: %s\n' "$prog" "$*" >&2; }
note() { printf '%s: %s\n' "$prog" "$*" >&2; }

# ------------------------------------------------------------------- arguments
command='' name='' config=${OPENPLC_CONFIG-} venvs_dir=${OPENPLC_VENVS_DIR-}
requirements='' python='' runtime=${OPENPLC_RUNTIME-} recreate=0 yes=0 dropin=
positional=()

need_value() {
    [[ $# -ge 2 && -n $2 ]] || die 2 "$1 needs a value; see $prog --help"
}

while [[ $# -gt 0 ]]; do
    opt=$1
    case $opt in
        -h | --help) usage; exit 0 ;;
        --*=*) set -- "${opt%%=*}" "${opt#*=}" "${@:2}"; continue ;;
        --config) need_value "$@"; config=$2; shift 2 ;;
        --venvs-dir) need_value "$@"; venvs_dir=$2; shift 2 ;;
        --requirements) need_value "$@"; requirements=$2; shift 2 ;;
        --python) need_value "$@"; python=$2; shift 2 ;;
        --runtime) need_value "$@"; runtime=$2; shift 2 ;;
        --recreate) recreate=1; shift ;;
        --dropin) need_value "$@"; dropin=$2; shift 2 ;;
        -y | --yes) yes=1; shift ;;
        --) shift; positional+=("$@"); break ;;
        -*) die 2 "unknown option '$opt'; see $prog --help" ;;
        *) positional+=("$opt"); shift ;;
    esac
done

[[ ${#positional[@]} -gt 0 ]] || die 2 "no command given; try: $prog help"
command=${positional[0]}
case $command in
    help) usage; exit 0 ;;
    list)
        [[ ${#positional[@]} -eq 1 ]] || die 2 "list takes no NAME; usage: $prog list"
        ;;
    create | install | remove | info)
        [[ ${#positional[@]} -ge 2 ]] || die 2 "$command needs a plugin NAME; usage: $prog $command NAME"
        [[ ${#positional[@]} -eq 2 ]] || die 2 "$command takes one NAME, got: ${positional[*]:1}"
        name=${positional[1]}
        # OpenPLC keeps plugin names in 64-byte buffers; the name is also a directory.
        [[ $name =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$ ]] ||
            die 2 "'$name' is not a plugin name (letters, digits, _ . -, at most 63, not starting with . or -)"
        ;;
    *) die 2 "unknown command '$command'; commands: create, install, list, remove, info, help" ;;
esac
[[ -z $requirements || $command == create || $command == install ]] ||
    die 2 "--requirements only applies to create and install"
[[ $recreate == 0 || $command == create ]] || die 2 "--recreate only applies to create"
[[ -z $dropin || $command == create ]] || die 2 "--dropin only applies to create"
if [[ -n $dropin ]]; then
    [[ -d $dropin ]] || die 3 "--dropin $dropin is not a directory; create it first (mkdir -p $dropin)"
    dropin=$(realpath -- "$dropin")
fi

venvs_dir=${venvs_dir:-$root/venvs}
if [[ -n $config ]]; then
    [[ -f $config ]] || die 3 "plugins.conf $config not found; fix --config or \$OPENPLC_CONFIG"
elif [[ -f $root/plugins.conf ]]; then
    config=$root/plugins.conf
fi
[[ -z $config ]] || config=$(realpath -- "$config")
venvs_dir=$(realpath -m -- "$venvs_dir")
venv=''
[[ -z $name ]] || venv=$venvs_dir/$name

# --------------------------------------------------------------------- helpers

# rel_path TARGET BASE: TARGET relative to BASE, written as plugins.conf writes
# relative paths (./x or ../x); absolute when the two share nothing below /
# (../../../tmp/x would break as soon as the project moves).
rel_path() {
    local rel target base
    target=$(realpath -m -- "$1") base=$(realpath -m -- "$2")
    target=${target#/} base=${base#/}
    if [[ ${target%%/*} != "${base%%/*}" ]]; then
        printf '/%s\n' "$target"
        return
    fi
    rel=$(realpath -m --relative-to="$2" -- "$1")
    case $rel in
        ../*) printf '%s\n' "$rel" ;;
        .) printf '.\n' ;;
        *) printf './%s\n' "$rel" ;;
    esac
}

# display PATH: PATH relative to the current directory when it is below it.
display() {
    local rel
    rel=$(realpath -m --relative-to="$PWD" -- "$1")
    if [[ $rel == ../* ]]; then printf '%s\n' "$1"; else printf '%s\n' "$rel"; fi
}

# config_line NAME: sets conf_fields (array) and conf_lineno from NAME's line in
# plugins.conf. Comments may be indented and lines may end in CRLF (both of
# which OpenPLC's parser gets wrong).
conf_fields=() conf_lineno=0
config_line() {
    conf_fields=() conf_lineno=0
    [[ -n $config ]] || return 1
    local line n=0 fields i
    while IFS= read -r line || [[ -n $line ]]; do
        n=$((n + 1))
        line=${line%$'\r'}
        [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
        IFS=, read -r -a fields <<<"$line,"
        for i in "${!fields[@]}"; do
            fields[i]=${fields[i]#"${fields[i]%%[![:space:]]*}"}
            fields[i]=${fields[i]%"${fields[i]##*[![:space:]]}"}
        done
        if [[ ${fields[0]-} == "$1" ]]; then
            conf_fields=("${fields[@]}")
            conf_lineno=$n
            return 0
        fi
    done <"$config"
    return 1
}

# conf_path FIELD: a path from plugins.conf, made absolute against its directory.
conf_path() {
    if [[ $1 == /* ]]; then printf '%s\n' "$1"; else realpath -m -- "$(dirname -- "$config")/$1"; fi
}

# find_requirements: sets req_file (may stay empty) and req_looked (where it looked).
req_file='' req_looked=()
find_requirements() {
    if [[ -n $requirements ]]; then
        [[ -f $requirements ]] || die 3 "--requirements $requirements not found"
        req_file=$(realpath -- "$requirements")
        return
    fi
    local candidates=() candidate
    if config_line "$name" && [[ -n ${conf_fields[1]-} ]]; then
        candidates+=("$(dirname -- "$(conf_path "${conf_fields[1]}")")/requirements.txt")
    fi
    candidates+=(
        "$root/plugins/$name/requirements.txt"
        "$root/examples/plugins/$name/requirements.txt"
        "$root/core/src/drivers/plugins/python/$name/requirements.txt"
        "$root/core/src/drivers/plugins/python/${name}_plugin/requirements.txt"
    )
    for candidate in "${candidates[@]}"; do
        req_looked+=("$(display "$candidate")")
        if [[ -f $candidate ]]; then
            req_file=$(realpath -- "$candidate")
            return
        fi
    done
}

# python_version PATH: X.Y.Z of an interpreter, empty if it does not run (pyenv
# shims of inactive versions exist on PATH but fail).
python_version() {
    "$1" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null || true
}

# venv_version DIR: the version pyvenv.cfg records (venv writes `version`,
# virtualenv `version_info`).
venv_version() {
    local key value
    [[ -f $1/pyvenv.cfg ]] || return 0
    while IFS='=' read -r key value; do
        key=${key//[[:space:]]/}
        if [[ $key == version || $key == version_info ]]; then
            value=${value#"${value%%[![:space:]]*}"}
            printf '%s\n' "${value%"${value##*[![:space:]]}"}"
            return 0
        fi
    done <"$1/pyvenv.cfg"
}

xy_of() { [[ $1 =~ ^([0-9]+\.[0-9]+) ]] && printf '%s\n' "${BASH_REMATCH[1]}"; }

# runtime_info: sets rt_bin, rt_xy, rt_prefix, rt_version from the runtime's
# python-info, or rt_why when there is no usable runtime. Once.
rt_done=0 rt_bin='' rt_xy='' rt_prefix='' rt_version='' rt_why=''
runtime_info() {
    [[ $rt_done == 0 ]] || return 0
    rt_done=1
    if [[ -n $runtime ]]; then
        [[ -x $runtime ]] || die 3 "runtime $runtime (--runtime or \$OPENPLC_RUNTIME) is not an executable file"
        rt_bin=$runtime
    else
        local debug=$root/target/debug/openplc-runtime release=$root/target/release/openplc-runtime
        if [[ -x $release && (! -x $debug || $release -nt $debug) ]]; then
            rt_bin=$release
        elif [[ -x $debug ]]; then
            rt_bin=$debug
        else
            rt_bin=$(command -v openplc-runtime || true)
        fi
    fi
    if [[ -z $rt_bin ]]; then
        rt_why="no openplc-runtime binary (build it with cargo build, or set OPENPLC_RUNTIME)"
        return 0
    fi
    local output line
    if ! output=$("$rt_bin" python-info 2>&1); then
        rt_why="'$rt_bin python-info' failed: ${output//$'\n'/ }"
        rt_bin=''
        return 0
    fi
    while IFS= read -r line; do
        case $line in
            major_minor=*) rt_xy=${line#*=} ;;
            prefix=*) rt_prefix=${line#*=} ;;
            version=*) rt_version=${line#*=} ;;
        esac
    done <<<"$output"
    [[ -n $rt_xy ]] || rt_xy=$(xy_of "$rt_version" || true)
    if [[ -z $rt_xy ]]; then
        rt_why="'$rt_bin python-info' printed no major_minor= line"
        rt_bin=''
    fi
}

# choose_python: sets py and py_version: the interpreter new venvs are made with.
py='' py_version=''
choose_python() {
    runtime_info
    if [[ -n $python ]]; then
        py_version=$(python_version "$python")
        [[ -n $py_version ]] || die 3 "--python $python does not run"
        py=$python
        if [[ -n $rt_xy && $(xy_of "$py_version") != "$rt_xy" ]]; then
            die 5 "--python $python is Python $py_version but the runtime ($rt_bin) embeds $rt_xy; its venvs must be $rt_xy"
        fi
        return
    fi
    if [[ -z $rt_xy ]]; then
        py_version=$(python_version python3)
        [[ -n $py_version ]] || die 3 "python3 not found; install it (Debian: apt-get install python3 python3-venv)"
        py=python3
        warn "$rt_why; using python3 ($py_version): the venv may not match the runtime's Python; check later with: $prog info NAME"
        return
    fi
    # The runtime's own interpreter first: exactly the Python it embeds.
    local candidates=() candidate version
    [[ -z $rt_prefix ]] || candidates+=("$rt_prefix/bin/python$rt_xy")
    candidates+=("python$rt_xy" python3)
    for candidate in "${PYENV_ROOT:-${HOME-}/.pyenv}"/versions/"$rt_xy"*/bin/python"$rt_xy" \
        /usr/bin/python"$rt_xy" /usr/local/bin/python"$rt_xy"; do
        candidates+=("$candidate")
    done
    for candidate in "${candidates[@]}"; do
        version=$(python_version "$candidate")
        if [[ -n $version && $(xy_of "$version") == "$rt_xy" ]]; then
            py=$candidate py_version=$version
            return
        fi
    done
    die 5 "the runtime ($rt_bin) embeds Python $rt_xy but there is no python$rt_xy here; install it (Debian: apt-get install python$rt_xy-venv) or pass --python PATH"
}

# confirm WHAT: deleting needs --yes, or a yes typed on a terminal.
confirm() {
    [[ $yes == 1 ]] && return 0
    if [[ -t 0 && -t 2 ]]; then
        local answer=''
        read -r -p "$1? [y/N] " answer || true
        [[ $answer == [yY]* ]] && return 0
        die 4 "not confirmed; nothing was changed"
    fi
    die 4 "$1: refusing without confirmation (no terminal to ask on); re-run with --yes"
}

is_venv() { [[ -f $1/pyvenv.cfg ]]; }

# packages DIR: name==version of each distribution installed in a venv.
packages() {
    local info base
    for info in "$1"/lib/python*/site-packages/*.dist-info; do
        [[ -d $info ]] || continue
        base=$(basename -- "$info" .dist-info)
        printf '%s==%s\n' "${base%%-*}" "${base#*-}"
    done | sort -f
}

make_venv() {
    note "creating $(display "$venv") with $py (Python $py_version)"
    mkdir -p -- "$venvs_dir"
    if ! "$py" -m venv -- "$venv" >&2; then
        rm -rf -- "$venv"
        die 1 "'$py -m venv $venv' failed; on Debian install the venv module: apt-get install python$(xy_of "$py_version")-venv"
    fi
}

install_requirements() {
    note "installing $(display "$req_file") into $(display "$venv")"
    # pip resolves relative paths inside the file (wheels, -e ./x) from the
    # current directory: make that the file's own directory.
    if ! (cd -- "$(dirname -- "$req_file")" &&
        "$venv/bin/python" -m pip install --disable-pip-version-check --requirement "$req_file" >&2); then
        die 1 "pip could not install $(display "$req_file") into $(display "$venv") (its messages are above); fix the requirements and run: $prog install $name"
    fi
}

# check_venv_matches: an existing venv must be the runtime's X.Y (when that is
# known: the runtime or --python says) and runnable.
check_venv_matches() {
    local version
    version=$(venv_version "$venv")
    if [[ (-n $rt_xy || -n $python) && $(xy_of "$version") != "$(xy_of "$py_version")" ]]; then
        die 5 "$(display "$venv") is Python ${version:-unknown} but the runtime needs $(xy_of "$py_version"); rebuild it: $prog create --recreate --yes $name"
    fi
    if [[ -z $(python_version "$venv/bin/python") ]]; then
        die 5 "$(display "$venv")/bin/python does not run (was its interpreter removed?); rebuild it: $prog create --recreate --yes $name"
    fi
}

print_conf_line() {
    local base line plugin_rel venv_rel dir candidate
    if [[ -n $config ]]; then base=$(dirname -- "$config"); else base=$root; fi
    venv_rel=$(rel_path "$venv" "$base")
    if config_line "$name"; then
        local fields=("${conf_fields[@]}")
        # Legacy 4- and 5-field lines: add the empty config_path, then venv_path.
        while [[ ${#fields[@]} -lt 6 ]]; do fields+=(''); done
        fields[5]=$venv_rel
        line=$(IFS=,; printf '%s' "${fields[*]:0:6}")
        if [[ $line == "$(IFS=,; printf '%s' "${conf_fields[*]}")" ]]; then
            note "$(display "$config"):$conf_lineno already has the line for $name:"
        else
            note "change line $conf_lineno of $(display "$config") to:"
        fi
    else
        plugin_rel="./path/to/$name.py"
        if [[ -n $req_file ]]; then
            dir=$(dirname -- "$req_file")
            for candidate in "$dir/plugin.py" "$dir/$name.py"; do
                if [[ -f $candidate ]]; then plugin_rel=$(rel_path "$candidate" "$base"); break; fi
            done
        fi
        line="$name,$plugin_rel,1,0,,$venv_rel"
        if [[ -n $config ]]; then
            note "add this line to $(display "$config"):"
        else
            note "add this line to plugins.conf (paths relative to $base):"
        fi
    fi
    printf '%s\n' "$line"
    [[ -z $dropin ]] || write_dropin "$line" "$base"
}

# write_dropin LINE BASE: LINE (paths relative to BASE) as DROPIN/50-NAME.conf,
# every path made absolute: a drop-in's relative paths would be relative to
# its own directory.
write_dropin() {
    local fields i file
    IFS=, read -r -a fields <<<"$1,"
    for i in 1 4 5; do
        if [[ -n ${fields[i]-} && ${fields[i]} != /* ]]; then
            fields[i]=$(realpath -m -- "$2/${fields[i]}")
        fi
    done
    file=$dropin/50-$name.conf
    {
        printf '# Plugin %s, written by %s create --dropin.\n' "$name" "$prog"
        printf '# name,path,enabled,type,config_path,venv_path\n'
        (IFS=,; printf '%s\n' "${fields[*]:0:6}")
    } >"$file.tmp" || die 1 "cannot write $file.tmp"
    mv -f -- "$file.tmp" "$file" || die 1 "cannot write $file"
    note "wrote $(display "$file"); the runtime reads it from /etc/openplc/plugins.conf.d or /var/lib/openplc/plugins.conf.d (check with: openplc-runtime check)"
}

# -------------------------------------------------------------------- commands
cmd_create() {
    find_requirements
    # Ask before anything else is printed: a refusal stays one line.
    local rebuild=0
    if [[ $recreate == 1 && (-e $venv || -L $venv) ]]; then
        confirm "delete and rebuild $(display "$venv")"
        rebuild=1
    fi
    choose_python
    if [[ -e $venv || -L $venv ]]; then
        if [[ $rebuild == 1 ]]; then
            rm -rf -- "$venv"
        elif ! is_venv "$venv"; then
            die 3 "$(display "$venv") exists but is not a venv (no pyvenv.cfg); move it away, or replace it: $prog create --recreate --yes $name"
        else
            check_venv_matches
            note "$(display "$venv") exists (Python $(venv_version "$venv")); keeping it"
        fi
    fi
    [[ -e $venv ]] || make_venv
    if [[ -n $req_file ]]; then
        install_requirements
    else
        warn "no requirements.txt for $name (looked in: ${req_looked[*]}); the venv has no packages; give one with --requirements FILE"
    fi
    print_conf_line
}

cmd_install() {
    find_requirements
    [[ -n $req_file ]] ||
        die 3 "no requirements.txt for $name (looked in: ${req_looked[*]}); put one next to the plugin or pass --requirements FILE"
    choose_python
    if [[ -e $venv || -L $venv ]]; then
        is_venv "$venv" ||
            die 3 "$(display "$venv") exists but is not a venv (no pyvenv.cfg); replace it: $prog create --recreate --yes $name"
        check_venv_matches
    else
        make_venv
    fi
    install_requirements
}

cmd_remove() {
    [[ -e $venv || -L $venv ]] || die 3 "no venv $(display "$venv"); see: $prog list"
    # Refuse what is not a venv: a wrong --venvs-dir must not delete a project.
    is_venv "$venv" || die 3 "$(display "$venv") is not a venv (no pyvenv.cfg); not deleting it"
    confirm "delete $(display "$venv")"
    rm -rf -- "$venv"
    note "removed $(display "$venv")"
}

# match_text VERSION: whether a venv of VERSION suits the runtime.
match_text() {
    runtime_info
    local xy
    xy=$(xy_of "$1" || true)
    if [[ -z $rt_xy ]]; then
        printf 'unknown (%s)\n' "$rt_why"
    elif [[ $xy == "$rt_xy" ]]; then
        printf 'yes (runtime embeds %s)\n' "$rt_xy"
    else
        printf 'NO: runtime embeds %s; rebuild: %s create --recreate --yes %s\n' "$rt_xy" "$prog" "$2"
    fi
}

cmd_info() {
    [[ -e $venv ]] || die 3 "no venv $(display "$venv"); create it: $prog create $name"
    is_venv "$venv" || die 3 "$(display "$venv") is not a venv (no pyvenv.cfg); rebuild it: $prog create --recreate --yes $name"
    local version home interp match pkgs
    runtime_info
    version=$(venv_version "$venv")
    home=$(sed -n 's/^[[:space:]]*home[[:space:]]*=[[:space:]]*//p' "$venv/pyvenv.cfg" | head -n 1)
    if [[ -n $(python_version "$venv/bin/python") ]]; then
        interp="$venv/bin/python runs"
    else
        interp="$venv/bin/python does NOT run (missing interpreter under $home?)"
    fi
    match=$(match_text "$version" "$name")
    find_requirements
    printf 'name:           %s\n' "$name"
    printf 'venv:           %s\n' "$venv"
    printf 'python:         %s (pyvenv.cfg; home = %s)\n' "${version:-unknown}" "$home"
    printf 'interpreter:    %s\n' "$interp"
    printf 'runtime:        %s\n' "${rt_bin:-none}${rt_version:+ (Python $rt_version)}"
    printf 'matches:        %s\n' "$match"
    printf 'requirements:   %s\n' "${req_file:-none found}"
    if config_line "$name"; then
        printf 'plugins.conf:   %s:%s: %s\n' "$config" "$conf_lineno" "$(IFS=,; printf '%s' "${conf_fields[*]}")"
    else
        printf 'plugins.conf:   %s\n' "${config:+no line for $name in $config}${config:-none}"
    fi
    printf 'size:           %s\n' "$(du -sh -- "$venv" | cut -f1)"
    pkgs=$(packages "$venv")
    printf 'packages:       %s\n' "$(grep -c . <<<"$pkgs" || true)"
    local pkg
    while IFS= read -r pkg; do
        [[ -z $pkg ]] || printf '  %s\n' "$pkg"
    done <<<"$pkgs"
    [[ $match != NO* ]] || exit 5
    [[ -n $(python_version "$venv/bin/python") ]] || exit 5
}

cmd_list() {
    local dirs=() dir version match count
    if [[ -d $venvs_dir ]]; then
        for dir in "$venvs_dir"/*/; do
            [[ -d $dir ]] && dirs+=("${dir%/}")
        done
    fi
    if [[ ${#dirs[@]} -eq 0 ]]; then
        printf 'no venvs in %s\n' "$(display "$venvs_dir")"
        return 0
    fi
    runtime_info
    printf '%-24s %-10s %-8s %-8s %s\n' NAME PYTHON MATCHES PACKAGES PATH
    for dir in "${dirs[@]}"; do
        if ! is_venv "$dir"; then
            printf '%-24s %-10s %-8s %-8s %s\n' "$(basename -- "$dir")" - - - "$(display "$dir") (not a venv: no pyvenv.cfg)"
            continue
        fi
        version=$(venv_version "$dir")
        if [[ -z $rt_xy ]]; then match='?'
        elif [[ $(xy_of "$version") == "$rt_xy" ]]; then match=yes
        else match=NO; fi
        count=$(packages "$dir" | grep -c . || true)
        printf '%-24s %-10s %-8s %-8s %s\n' "$(basename -- "$dir")" "${version:-?}" "$match" "$count" "$(display "$dir")"
    done
    if [[ -z $rt_xy ]]; then
        note "MATCHES is ?: $rt_why"
    else
        note "runtime $rt_bin embeds Python $rt_xy"
    fi
}

"cmd_$command"
