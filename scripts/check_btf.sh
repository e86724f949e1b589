#!/bin/sh
# Does this node meet execlog's kernel requirements? The reference document asks for a kernel
# >= 5.8 with CONFIG_DEBUG_INFO_BTF=y; what the CO-RE program actually loads is the kernel's own
# BTF at /sys/kernel/btf/vmlinux, so that file is checked too and settles an unknown config.
# POSIX sh on purpose: node images and busybox-based debug pods may have no bash.

set -u

MIN_MAJOR=5
MIN_MINOR=8

usage() {
    cat <<'EOF'
usage: check_btf.sh [-h|--help]

Checks on the node itself (not from a terminal inside a workspace) what execlog's CO-RE BPF
program needs, and prints one line per check:
  kernel   release >= 5.8 (the BPF ring buffer appeared in 5.8)
  config   CONFIG_DEBUG_INFO_BTF=y, read from /proc/config.gz, else /boot/config-RELEASE
  btf      /sys/kernel/btf/vmlinux exists, is readable and holds BTF (what CO-RE loads)
Each line starts with OK, FAIL (followed by the fix), UNKNOWN (cannot tell, with a hint) or
WARN (odd but harmless). An unknown config is fine when the kernel's BTF is readable.

Exit status:
  0   all requirements met
  1   at least one requirement is not met
  2   could not determine: nothing failed, but a requirement could not be checked
      (no kernel config and no /sys/kernel/btf/vmlinux, or an unparsable kernel release)
  64  bad command-line arguments

Environment, to check another root or to test (set a variable to override its default):
  CHECK_BTF_RELEASE      kernel release                     [output of uname -r]
  CHECK_BTF_PROC_CONFIG  gzipped config of running kernel   [/proc/config.gz]
  CHECK_BTF_BOOT_DIR     directory holding config-RELEASE   [/boot]
  CHECK_BTF_VMLINUX      kernel BTF                         [/sys/kernel/btf/vmlinux]
EOF
}

case $# in
    0) ;;
    *)
        case $1 in
            -h | --help)
                usage
                exit 0
                ;;
            *)
                printf 'check_btf.sh: unknown argument: %s\n' "$1" >&2
                usage >&2
                exit 64
                ;;
        esac
        ;;
esac

if [ "${CHECK_BTF_RELEASE+set}" = set ]; then
    release=$CHECK_BTF_RELEASE
else
    release=$(uname -r)
fi
proc_config=${CHECK_BTF_PROC_CONFIG-/proc/config.gz}
boot_dir=${CHECK_BTF_BOOT_DIR-/boot}
vmlinux=${CHECK_BTF_VMLINUX-/sys/kernel/btf/vmlinux}
boot_config=$boot_dir/config-$release

report() { # STATUS MESSAGE
    printf '%-7s %s\n' "$1" "$2"
}

# --- kernel version -----------------------------------------------------------------------------
# Only the leading MAJOR.MINOR counts: distributions append anything (-1051-aws, -18-amd64, +).
version=$(printf '%s\n' "$release" | sed -n '1s/^\([0-9][0-9]*\)\.\([0-9][0-9]*\).*$/\1 \2/p')
if [ -z "$version" ]; then
    kernel_status=UNKNOWN
    kernel_msg="kernel: cannot read a MAJOR.MINOR version from release '$release'; hint: run on the node, where uname -r gives e.g. 5.15.0-1051-aws"
else
    major=${version% *}
    minor=${version#* }
    # awk compares as numbers: no octal surprise on "08", no overflow on absurd lengths.
    if awk -v a="$major" -v b="$minor" -v ma="$MIN_MAJOR" -v mi="$MIN_MINOR" \
        'BEGIN { exit !((a + 0 > ma + 0) || (a + 0 == ma + 0 && b + 0 >= mi + 0)) }'; then
        kernel_status=OK
        kernel_msg="kernel: $release is $major.$minor, >= $MIN_MAJOR.$MIN_MINOR"
    else
        kernel_status=FAIL
        kernel_msg="kernel: $release is $major.$minor, older than $MIN_MAJOR.$MIN_MINOR; fix: move the node to a kernel >= $MIN_MAJOR.$MIN_MINOR (a newer node image or OS release)"
    fi
fi

# --- kernel config ------------------------------------------------------------------------------
# /proc/config.gz describes the running kernel for certain, so it wins over /boot.
config_text=
config_source=
config_notes=
if [ -e "$proc_config" ]; then
    if command -v gzip >/dev/null 2>&1; then
        decompress='gzip -dc'
    else
        decompress='zcat'
    fi
    if config_text=$($decompress <"$proc_config" 2>/dev/null); then
        config_source=$proc_config
    else
        config_text=
        config_notes="$proc_config exists but could not be decompressed; "
    fi
else
    config_notes="no $proc_config; "
fi
if [ -z "$config_source" ]; then
    if [ -r "$boot_config" ] && [ -f "$boot_config" ]; then
        config_text=$(cat "$boot_config")
        config_source=$boot_config
    else
        config_notes="${config_notes}no readable $boot_config"
    fi
fi

if [ -z "$config_source" ]; then
    config_value=unknown
else
    # The last assignment wins, as in Kconfig; a "# ... is not set" line leaves it unset.
    config_line=$(printf '%s\n' "$config_text" | grep -E '^CONFIG_DEBUG_INFO_BTF=' | tail -n 1)
    if [ -z "$config_line" ]; then
        config_value='unset'
    else
        config_value=${config_line#CONFIG_DEBUG_INFO_BTF=}
    fi
fi

# --- kernel BTF ---------------------------------------------------------------------------------
# Reading the magic proves both "readable" and "is BTF" (0xeB9F, in the host's byte order).
if [ ! -e "$vmlinux" ]; then
    btf_state=missing
elif [ ! -f "$vmlinux" ]; then
    btf_state=notfile
else
    magic=$(od -An -tx1 -N2 "$vmlinux" 2>/dev/null | tr -d ' \n')
    case $magic in
        9feb | eb9f) btf_state=ok ;;
        '') btf_state=unreadable ;;
        *) btf_state=notbtf ;;
    esac
fi

case $config_value in
    y)
        config_status=OK
        config_msg="config: CONFIG_DEBUG_INFO_BTF=y in $config_source"
        ;;
    unknown)
        config_status=UNKNOWN
        if [ "$btf_state" = ok ]; then
            config_msg="config: no kernel config found ($config_notes); not needed, the kernel's BTF at $vmlinux is readable"
        else
            config_msg="config: no kernel config found ($config_notes); hint: run on the node itself, or see the btf line"
        fi
        ;;
    *)
        if [ "$config_value" = unset ]; then
            shown="CONFIG_DEBUG_INFO_BTF is not set"
        else
            shown="CONFIG_DEBUG_INFO_BTF=$config_value"
        fi
        if [ "$btf_state" = ok ]; then
            # Only a /boot config can disagree with the running kernel: it may belong to another build.
            config_status=WARN
            config_msg="config: $shown in $config_source, yet the running kernel has BTF at $vmlinux; that config file may not belong to the running kernel"
        else
            config_status=FAIL
            config_msg="config: $shown in $config_source; fix: use a node image whose kernel is built with CONFIG_DEBUG_INFO_BTF=y (most current distribution kernels are), or rebuild the kernel with it (needs pahole)"
        fi
        ;;
esac

case $btf_state in
    ok)
        btf_status=OK
        btf_msg="btf: $vmlinux is readable kernel BTF"
        ;;
    unreadable)
        btf_status=FAIL
        btf_msg="btf: $vmlinux exists but cannot be read; fix: run as root (the collector pod runs privileged with /sys mounted from the host)"
        ;;
    notfile | notbtf)
        btf_status=FAIL
        btf_msg="btf: $vmlinux is not a kernel BTF file; fix: make sure the host's sysfs is mounted at /sys (in a pod: a hostPath volume for /sys)"
        ;;
    missing)
        case $config_value in
            y)
                btf_status=FAIL
                btf_msg="btf: $vmlinux is missing although the kernel is built with BTF; fix: mount the host's sysfs at /sys (in a pod: a hostPath volume for /sys)"
                ;;
            unknown)
                btf_status=UNKNOWN
                btf_msg="btf: $vmlinux is missing and no kernel config says whether the kernel has BTF; hint: run on the node itself with sysfs mounted at /sys, or find the kernel's config"
                ;;
            *)
                btf_status=FAIL
                btf_msg="btf: $vmlinux is missing: the kernel is built without BTF; fix: use a kernel built with CONFIG_DEBUG_INFO_BTF=y (see the config line)"
                ;;
        esac
        ;;
esac

report "$kernel_status" "$kernel_msg"
report "$config_status" "$config_msg"
report "$btf_status" "$btf_msg"

# An UNKNOWN config is settled by readable BTF (and is reported UNKNOWN on the btf line when it
# is not), so only the kernel and btf checks decide between "met" and "could not determine".
for status in "$kernel_status" "$config_status" "$btf_status"; do
    [ "$status" = FAIL ] && exit 1
done
for status in "$kernel_status" "$btf_status"; do
    [ "$status" = UNKNOWN ] && exit 2
done
exit 0
