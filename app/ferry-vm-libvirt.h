/* ferry-vm-libvirt.h: a VM definition as a libvirt domain (formatdomain.html),
 * for users who move a VM to virt-manager, virsh or a libvirt host, and back. */
#pragma once

#include "store.h"

G_BEGIN_DECLS

/* The namespace of Ferry's own <metadata> (OS id, accelerator, snapshot mode). */
#define FERRY_LIBVIRT_NS "urn:x-ferry:libvirt-domain:1"

/* A <domain> that `virt-xml-validate FILE domain` accepts: type 'kvm'
 * (x86_64, machine pc) or 'qemu' (riscv64, machine virt), name, uuid, memory,
 * vCPUs, direct kernel boot or a firmware loader, disks as virtio, floppies,
 * CD-ROM, network, serial console, display, sound, USB. Caller frees. */
char *ferry_vm_record_to_libvirt_xml(const FerryVmRecord *vm);

/* Reads a domain back: name, uuid (a new one when absent), memory, vCPUs,
 * arch, kernel/initrd/cmdline or loader, disk/floppy/CD-ROM files and the
 * devices Ferry has. What Ferry cannot take (a network disk, a bridge) is
 * skipped or mapped, with one line each in *warnings (may be NULL; caller
 * frees with g_ptr_array_unref). origin names the XML in messages. The record
 * is not checked against this host: see ferry_vm_record_check(). */
FerryVmRecord *ferry_vm_record_from_libvirt_xml(const char *xml, gssize len, const char *origin,
                                                GPtrArray **warnings, GError **error);

G_END_DECLS
