"""Firmware flavours and the os-term copy (actors/flavours.py, actors/firmware_copy.py).

The QEMU rules are checked against hw/ppc/spapr_fadump.c and spapr_rtas.c (2025) as
docs/firmware.md quotes them; the numbers below (chunk 16 of a 576MB region with a hole
at 512MB, 0x27a0 bytes of CPU state for 8 CPUs) are worked out by hand from those rules.
"""
from __future__ import annotations

import copy
import subprocess
import sys

import pytest

from fadumpsim import scenario, sim
from fadumpsim.actors import flavours
from fadumpsim.actors.commands import CommandError, parse_command
from fadumpsim.actors.firmware import Firmware
from fadumpsim.actors.firmware_copy import (CHUNK, ERR_INVALID_DEST,
                                            ERR_INVALID_SOURCE, PARAM_AREA, Copier, CopyFault,
                                            overwritten_pages)
from fadumpsim.actors.kernel.fwdump import (CPU_STATE_DATA, HPTE_REGION, INVALIDATE,
                                            REAL_MODE_REGION, REGISTER, UNREGISTER, make_fdm)
from fadumpsim.actors.machine import Machine
from fadumpsim.actors.pagemap import PageMap

MB, GB = 1 << 20, 1 << 30
PS = 64 << 10
BMS = 576 * MB          # boot memory of the 8GB story
AREA = 1152 * MB        # a destination well inside the partition


def firmware(flavour: str = "powervm", unassigned: tuple[int, ...] = (), cpus: int = 8,
             memory: str = "8G") -> Firmware:
    m = Machine.from_dict({"memory": memory, "cpus": cpus, "unassigned": list(unassigned)})
    return Firmware("firmware", m, "fadump=on", [], flavour)


def story_fdm(fw: Firmware, base: int = AREA, bms: int = BMS) -> dict:
    return make_fdm(base, fw.cpu_state_size, 0, bms)


def user_ram(start: int, end: int) -> PageMap:
    """Boot memory holds kernel data; [start, end) (the destination area) holds user pages."""
    ram = PageMap(PS)
    ram.assign(0, BMS, "kernel", "kernel:boot", 0)
    ram.assign(start, end, "user", "user:app", 0)
    return ram


def copy_with(fw: Firmware, fdm: dict, ram: PageMap, faults=(), blobs=None):
    sections = copy.deepcopy(fdm["sections"])
    res = Copier(fw.flavour, fw.machine.cpus, ram, blobs if blobs is not None else {}, fw,
                 list(faults)).run(sections)
    return sections, res


def by_type(sections: list[dict], typ: int) -> dict:
    return next(s for s in sections if s["type"] == typ)


# -- REGISTER / UNREGISTER / INVALIDATE per flavour ----------------------------------------------
def call(fw: Firmware, cmd: int, fdm=None) -> int:
    return fw.configure_kernel_dump(cmd, fdm)


@pytest.mark.parametrize("flavour", flavours.FLAVOURS)
def test_register_twice_is_minus_9_and_while_a_dump_is_active_minus_10(flavour):
    fw = firmware(flavour)
    fdm = story_fdm(fw)
    assert call(fw, REGISTER, fdm) == 0 and fw.registered is not None
    assert call(fw, REGISTER, fdm) == -9
    fw.registered, fw.dump_active = None, copy.deepcopy(fdm)
    assert call(fw, REGISTER, fdm) == -10 and fw.registered is None


def test_boot_memory_hole_is_minus_3_on_powervm_and_registers_on_qemu():
    # LMB 2 = [512MB, 768MB) is missing: the real-mode region's source [0, 576MB) has a hole
    pvm, qemu = firmware("powervm", (2,)), firmware("qemu", (2,))
    assert call(pvm, REGISTER, story_fdm(pvm)) == -3 and pvm.registered is None
    assert call(qemu, REGISTER, story_fdm(qemu)) == 0 and qemu.registered is not None
    # the same on the destination side: LMB 5 inside [1152MB, 1728MB)
    pvm, qemu = firmware("powervm", (5,)), firmware("qemu", (5,))
    assert call(pvm, REGISTER, story_fdm(pvm)) == -3
    assert call(qemu, REGISTER, story_fdm(qemu)) == 0


def test_qemu_register_checks_the_buffer_in_the_rma_version_and_section_count():
    fw = firmware("qemu")
    fdm = story_fdm(fw)
    rma = fw.machine.rma_size
    assert call(fw, REGISTER, {**fdm, "addr": 0}) == -3
    # 40-byte header + 3 x 40-byte sections = 160 bytes must end inside the RMA
    assert call(fw, REGISTER, {**fdm, "addr": rma - 159}) == -3
    assert call(fw, REGISTER, {**fdm, "version": 2}) == -3
    assert call(fw, REGISTER, "not a structure") == -3
    eleven = {**fdm, "sections": [dict(fdm["sections"][2]) for _ in range(11)]}
    assert call(fw, REGISTER, eleven) == -3
    assert fw.registered is None
    assert call(fw, REGISTER, {**fdm, "addr": rma - 160}) == 0
    fw.registered = None
    ten = {**fdm, "sections": [dict(fdm["sections"][2]) for _ in range(10)]}
    assert call(fw, REGISTER, ten) == 0
    fw.registered = None
    assert call(fw, REGISTER, {**fdm, "sections": []}) == 0     # QEMU accepts no sections


def test_powervm_register_refuses_no_sections_and_more_than_ten():
    fw = firmware("powervm")
    fdm = story_fdm(fw)
    assert call(fw, REGISTER, {**fdm, "sections": []}) == -3
    eleven = {**fdm, "sections": [dict(fdm["sections"][2]) for _ in range(11)]}
    assert call(fw, REGISTER, eleven) == -3
    assert call(fw, REGISTER, {**fdm, "version": 2}) == -3
    ten = {**fdm, "sections": [dict(fdm["sections"][2]) for _ in range(10)]}
    assert call(fw, REGISTER, ten) == 0


@pytest.mark.parametrize("flavour", flavours.FLAVOURS)
def test_a_section_that_is_not_the_seven_fields_is_unreadable(flavour):
    fw = firmware(flavour)
    fdm = story_fdm(fw)
    short = {k: v for k, v in fdm["sections"][2].items() if k != "dumped"}
    assert call(fw, REGISTER, {**fdm, "sections": fdm["sections"][:2] + [short]}) == -3
    assert call(fw, REGISTER, {**fdm, "sections": [*fdm["sections"][:2], 7]}) == -3
    assert call(fw, REGISTER, {"version": 1}) == -3
    assert fw.registered is None


def test_register_resets_the_status_it_stores():
    fw = firmware("qemu")
    assert call(fw, REGISTER, {**story_fdm(fw), "status": 0x2000}) == 0
    assert fw.registered["status"] == 0


@pytest.mark.parametrize("flavour", flavours.FLAVOURS)
def test_unregister_is_minus_10_while_a_dump_is_active(flavour):
    fw = firmware(flavour)
    fdm = story_fdm(fw)
    fw.dump_active = copy.deepcopy(fdm)
    assert call(fw, UNREGISTER, fdm) == -10 and fw.dump_active is not None
    fw.dump_active = None
    call(fw, REGISTER, fdm)
    assert call(fw, UNREGISTER, fdm) == 0 and fw.registered is None


def test_invalidate_without_an_active_dump_falls_through_on_qemu_only():
    qemu, pvm = firmware("qemu"), firmware("powervm")
    for fw in (qemu, pvm):
        assert call(fw, REGISTER, story_fdm(fw)) == 0
    # QEMU stores -3, then falls through to its success exit: 0, and both are cleared
    assert call(qemu, INVALIDATE, None) == 0 and qemu.registered is None
    assert call(pvm, INVALIDATE, None) == -3 and pvm.registered is not None
    for fw in (qemu, pvm):
        fw.registered, fw.dump_active = None, story_fdm(fw)
        assert call(fw, INVALIDATE, fw.dump_active) == 0 and fw.dump_active is None


def test_device_tree_cpu_state_size_per_flavour():
    assert firmware("qemu", cpus=8).device_tree()["fadump"]["cpu_state_size"] == 32 + 1264 * 8
    assert firmware("qemu", cpus=1).device_tree()["fadump"]["cpu_state_size"] == 0x4f0 + 32
    assert firmware("powervm", cpus=8).device_tree()["fadump"]["cpu_state_size"] == 0x1000 + 0x400 * 8


# -- the os-term copy ----------------------------------------------------------------------------
@pytest.mark.parametrize("flavour", flavours.FLAVOURS)
def test_clean_copy_dumps_every_section_and_overwrites_the_destination(flavour):
    fw = firmware(flavour)
    fdm = story_fdm(fw)
    ram = user_ram(AREA, AREA + 2 * GB)
    secs, res = copy_with(fw, fdm, ram)
    cpu, rmr = by_type(secs, CPU_STATE_DATA), by_type(secs, REAL_MODE_REGION)
    assert (cpu["error"], rmr["error"]) == (0, 0)
    assert cpu["dumped"] == fw.cpu_state_size and rmr["dumped"] == BMS
    d = rmr["destination"]
    # the destination now holds the boot memory's kernel pages, page for page
    assert list(ram.pieces(d, d + BMS)) == [(d, d + BMS, "kernel", "kernel:boot", 0)]
    assert res.written == [[AREA, AREA + fw.cpu_state_size, CPU_STATE_DATA],
                           [d, d + BMS, REAL_MODE_REGION]]
    assert not res.hardware_error and not res.aborted


def test_qemu_cpu_state_is_32_plus_1264_bytes_per_cpu_whatever_the_kernel_asked():
    fw = firmware("qemu", cpus=4)
    fdm = make_fdm(AREA, 0x3000, 0, BMS)        # the kernel asked for more
    ram = user_ram(AREA, AREA + GB)
    secs, res = copy_with(fw, fdm, ram)
    cpu = by_type(secs, CPU_STATE_DATA)
    assert cpu["dumped"] == 32 + 1264 * 4 == 5088 and cpu["length"] == 0x3000
    assert res.written[0] == [AREA, AREA + 5088, CPU_STATE_DATA]
    # what firmware wrote there is its own data, not a copy of anything
    assert [p[2:] for p in ram.pieces(AREA, AREA + 5088)] == [("reserved", "fadump:section0x1", 0)]
    pvm = firmware("powervm", cpus=4)
    secs, _ = copy_with(pvm, fdm, user_ram(AREA, AREA + GB))
    assert by_type(secs, CPU_STATE_DATA)["dumped"] == 0x3000


def test_source_hole_fails_at_its_chunk_after_writing_the_chunks_before():
    # LMB 2 missing: boot memory [0, 576MB) is readable up to 512MB = 16 chunks of 32MB
    fw = firmware("qemu", (2,))
    fdm = story_fdm(fw)
    ram = user_ram(AREA, AREA + 2 * GB)
    secs, res = copy_with(fw, fdm, ram)
    rmr = by_type(secs, REAL_MODE_REGION)
    assert rmr["error"] == 0x4000 and rmr["dumped"] == 0          # FADUMP_ERROR_INVALID_SOURCE_ADDR
    d = rmr["destination"]
    assert res.written[-1] == [d, d + 16 * CHUNK, REAL_MODE_REGION]
    assert ram.klass_at(d + 16 * CHUNK - PS) == "kernel"       # copied
    assert ram.klass_at(d + 16 * CHUNK) == "user"              # chunk 16 and later untouched
    assert by_type(secs, CPU_STATE_DATA)["error"] == 0


def test_source_is_read_before_the_destination_is_checked_one_flag_only():
    # source hole at 512MB (chunk 16) and destination hole in the same chunk: 0x4000, never 0x5000
    fw = firmware("qemu", (2, 6))               # LMB 6 = [1536MB, 1792MB)
    fdm = story_fdm(fw)
    d = by_type(fdm["sections"], REAL_MODE_REGION)["destination"]
    assert (1536 * MB - d) // CHUNK == 11        # the destination hole comes first here
    secs, res = copy_with(fw, fdm, user_ram(AREA, AREA + 2 * GB))
    assert by_type(secs, REAL_MODE_REGION)["error"] == ERR_INVALID_DEST
    # move the destination so that its hole falls in chunk 16 too: the source wins
    fdm2 = make_fdm(1536 * MB - 16 * CHUNK - 4 * MB, fw.cpu_state_size, 0, BMS)
    secs, _ = copy_with(fw, fdm2, user_ram(AREA, AREA + 2 * GB))
    assert by_type(secs, REAL_MODE_REGION)["error"] == ERR_INVALID_SOURCE


@pytest.mark.parametrize("faults, flag", [
    ([CopyFault("destination", "rmr", 3), CopyFault("source", "rmr", 3)], ERR_INVALID_SOURCE),
    ([CopyFault("destination", "rmr", 3), CopyFault("hardware", "rmr", 3)], 0),
    ([CopyFault("hardware", "rmr", 3), CopyFault("source", "rmr", 3)], ERR_INVALID_SOURCE),
    ([CopyFault("source", "rmr", 4), CopyFault("destination", "rmr", 3)], ERR_INVALID_DEST),
])
def test_injected_faults_in_one_chunk_fail_in_read_then_write_order(faults, flag):
    fw = firmware("powervm")
    secs, res = copy_with(fw, story_fdm(fw), user_ram(AREA, AREA + GB), faults)
    assert by_type(secs, REAL_MODE_REGION)["error"] == flag
    assert res.hardware_error == (flag == 0)


def test_first_hole_and_present_ranges_of_the_lmb_table():
    fw = firmware("qemu", (3, 5))                    # LMBs are 256MB; 8GB of 16GB assigned
    assert fw.first_hole(0, 768 * MB) is None
    assert fw.first_hole(0, 768 * MB + 1) == 768 * MB
    assert fw.first_hole(800 * MB, MB) == 800 * MB   # inside a missing LMB: the start itself
    assert fw.first_hole(1024 * MB, 256 * MB) is None
    assert fw.first_hole(1024 * MB, 256 * MB + 1) == 1280 * MB
    assert fw.first_hole(8 * GB - MB, 2 * MB) == 8 * GB
    assert fw.first_hole(40 * GB, MB) == 40 * GB     # beyond the drmem table
    assert fw.present_ranges(700 * MB, 1400 * MB) == [(700 * MB, 768 * MB), (1024 * MB, 1280 * MB)]


def test_destination_hole_writes_the_in_partition_part_of_its_chunk():
    # address_space_write() goes on past an unassigned region: the chunk's head is written
    fw = firmware("qemu", (6,))
    fdm = story_fdm(fw)
    ram = user_ram(AREA, AREA + 2 * GB)
    secs, res = copy_with(fw, fdm, ram)
    rmr = by_type(secs, REAL_MODE_REGION)
    d = rmr["destination"]
    assert rmr["error"] == 0x1000 and rmr["dumped"] == 0          # FADUMP_ERROR_INVALID_DEST_ADDR
    written = [w for w in res.written if w[2] == REAL_MODE_REGION]
    assert written == [[d, d + 11 * CHUNK, REAL_MODE_REGION],
                       [d + 11 * CHUNK, 1536 * MB, REAL_MODE_REGION]]
    assert ram.klass_at(1536 * MB - PS) == "kernel" and ram.klass_at(1792 * MB) == "user"


@pytest.mark.parametrize("flavour, flag", [("qemu", ERR_INVALID_SOURCE), ("powervm", ERR_INVALID_DEST)])
def test_cpu_state_over_a_hole_writes_its_in_partition_part_and_is_flagged(flavour, flag):
    fw = firmware(flavour, (3,))                     # LMB 3 = [768MB, 1024MB) is missing
    fdm = make_fdm(768 * MB - 4096, fw.cpu_state_size, 0, BMS)
    ram = user_ram(512 * MB, 768 * MB)
    secs, res = copy_with(fw, fdm, ram)
    cpu = by_type(secs, CPU_STATE_DATA)
    assert (cpu["error"], cpu["dumped"]) == (flag, 0)
    assert res.written[0] == [768 * MB - 4096, 768 * MB, CPU_STATE_DATA]
    assert ram.klass_at(768 * MB - 4096) == "reserved" and ram.klass_at(768 * MB - 4097) == "user"


@pytest.mark.parametrize("n", [0, 1, 5, 17])
def test_injected_fault_at_chunk_n_writes_exactly_n_chunks(n):
    fw = firmware("powervm")
    fdm = story_fdm(fw)
    ram = user_ram(AREA, AREA + 2 * GB)
    truth = ram.copy()
    secs, res = copy_with(fw, fdm, ram, [CopyFault("destination", "rmr", n)])
    rmr = by_type(secs, REAL_MODE_REGION)
    d = rmr["destination"]
    assert rmr["error"] == ERR_INVALID_DEST and rmr["dumped"] == 0
    rmr_written = [w for w in res.written if w[2] == REAL_MODE_REGION]
    assert rmr_written == ([[d, d + n * CHUNK, REAL_MODE_REGION]] if n else [])
    # the user pages overwritten are exactly those of the written prefix (page-rounded out)
    hit = overwritten_pages(truth, res.written, PS)
    first, last = AREA // PS, (d + n * CHUNK + PS - 1) // PS
    assert hit["user"] == last - first and hit["kernel"] == 0


def test_a_fault_beyond_the_last_chunk_never_fires():
    fw = firmware("qemu")
    fdm = story_fdm(fw)
    secs, res = copy_with(fw, fdm, user_ram(AREA, AREA + GB), [CopyFault("source", "rmr", 18),
                                                               CopyFault("destination", "cpu", 1)])
    assert all(s["error"] == 0 for s in secs)
    assert by_type(secs, REAL_MODE_REGION)["dumped"] == BMS == 18 * CHUNK


def test_injected_faults_pick_their_section_and_side():
    for flavour, cpu_dest_flag in (("powervm", ERR_INVALID_DEST), ("qemu", ERR_INVALID_SOURCE)):
        fw = firmware(flavour)
        fdm = story_fdm(fw)
        secs, _ = copy_with(fw, fdm, user_ram(AREA, AREA + GB), [CopyFault("destination", "rmr")])
        assert [s["error"] for s in secs] == [0, 0, ERR_INVALID_DEST]
        secs, _ = copy_with(fw, fdm, user_ram(AREA, AREA + GB), [CopyFault("source", "cpu")])
        assert [s["error"] for s in secs] == [ERR_INVALID_SOURCE, 0, 0]
        assert by_type(secs, REAL_MODE_REGION)["dumped"] == BMS
        # QEMU's do_populate_cpu_state flags a failed destination write as a bad source
        secs, _ = copy_with(fw, fdm, user_ram(AREA, AREA + GB), [CopyFault("destination", "cpu")])
        assert [s["error"] for s in secs] == [cpu_dest_flag, 0, 0]
        # no section named: every section the copy reaches (HPTE has 0 bytes: nothing to fail)
        secs, res = copy_with(fw, fdm, user_ram(AREA, AREA + GB), [CopyFault("source")])
        assert [s["error"] for s in secs] == [ERR_INVALID_SOURCE, 0, ERR_INVALID_SOURCE]
        assert [s["dumped"] for s in secs] == [0, 0, 0] and res.written == []


def test_hardware_error_sets_no_flag_and_leaves_bytes_dumped_zero():
    for flavour in flavours.FLAVOURS:
        fw = firmware(flavour)
        secs, res = copy_with(fw, story_fdm(fw), user_ram(AREA, AREA + GB),
                              [CopyFault("hardware", "rmr", 2)])
        rmr = by_type(secs, REAL_MODE_REGION)
        assert (rmr["error"], rmr["dumped"]) == (0, 0) and res.hardware_error
        assert res.written[-1][1] - res.written[-1][0] == 2 * CHUNK
    assert flavours.final_status("powervm", True) == 0x2000
    assert flavours.final_status("powervm", False) == 0
    assert flavours.final_status("qemu", True) == flavours.final_status("qemu", False) == 0xC000


def test_qemu_cpu_state_hardware_error_aborts_before_later_sections():
    fw = firmware("qemu")
    secs, res = copy_with(fw, story_fdm(fw), user_ram(AREA, AREA + GB), [CopyFault("hardware", "cpu")])
    assert res.aborted and res.written == []
    assert by_type(secs, REAL_MODE_REGION)["dumped"] == 0     # never reached: sections in order
    pvm = firmware("powervm")
    secs, res = copy_with(pvm, story_fdm(pvm), user_ram(AREA, AREA + GB), [CopyFault("hardware", "cpu")])
    assert not res.aborted and res.hardware_error
    assert by_type(secs, REAL_MODE_REGION)["dumped"] == BMS


def test_unrequested_sections_are_skipped_and_unknown_types_flagged():
    fw = firmware("qemu")
    fdm = story_fdm(fw)
    secs = copy.deepcopy(fdm["sections"])
    secs[2]["request"] = 0
    secs[2]["dumped"], secs[2]["error"] = 99, 99           # reset by firmware
    secs.append({"type": 0x0042, "request": 1, "error": 0, "source": 0, "length": MB,
                 "dumped": 0, "destination": 3 * GB})
    ram = user_ram(AREA, AREA + GB)
    res = Copier("qemu", 8, ram, {}, fw, [CopyFault("source", "rmr")]).run(secs)
    assert (secs[2]["error"], secs[2]["dumped"]) == (0, 0)
    assert (secs[3]["error"], secs[3]["dumped"]) == (0x8000, 0)   # FADUMP_ERROR_INVALID_DATA_TYPE
    assert [w[2] for w in res.written] == [CPU_STATE_DATA]
    assert ram.klass_at(secs[2]["destination"]) == "user"


def test_qemu_skips_the_hpte_section_and_copies_a_parameter_area():
    fw = firmware("qemu")
    fdm = make_fdm(AREA, fw.cpu_state_size, 64 * 1024, BMS)
    secs = copy.deepcopy(fdm["sections"])
    secs.append({"type": PARAM_AREA, "request": 1, "error": 0, "source": 16 * MB,
                 "length": MB, "dumped": 0, "destination": 3 * GB})
    secs.append({"type": PARAM_AREA, "request": 1, "error": 0, "source": 4 * GB,
                 "length": MB, "dumped": 0, "destination": 4 * GB})     # in place: no copy
    res = Copier("qemu", 8, user_ram(AREA, AREA + GB), {}, fw, []).run(secs)
    assert by_type(secs, HPTE_REGION)["dumped"] == 0
    assert secs[3]["dumped"] == MB and secs[4]["dumped"] == MB
    assert [w[:2] for w in res.written if w[2] == PARAM_AREA] == [[3 * GB, 3 * GB + MB]]


def test_blobs_in_the_written_destination_are_gone_others_stay():
    fw = firmware("qemu")
    fdm = story_fdm(fw)
    d = by_type(fdm["sections"], REAL_MODE_REGION)["destination"]
    blobs = {d + 12 * CHUNK: (4096, "a"), d + 2 * CHUNK: (4096, "b"), d + BMS: (4096, "hdr")}
    copy_with(fw, fdm, user_ram(AREA, AREA + GB), [CopyFault("source", "rmr", 10)], blobs)
    assert sorted(blobs) == [d + 12 * CHUNK, d + BMS]   # chunk 12 was never written


def test_chunks_are_arithmetic_a_64tb_partition_copies_in_one_extent_step():
    fw = firmware("qemu", memory="64T")
    bms = 3 << 40                                    # ~98,000 chunks of 32MB
    fdm = make_fdm(bms, fw.cpu_state_size, 0, bms)
    ram = PageMap(PS)
    ram.assign(0, bms, "kernel", "kernel:boot", 0)
    ram.assign(bms, 2 * bms, "user", "user:app", 0)
    secs, res = copy_with(fw, fdm, ram, [CopyFault("destination", "rmr", 90_000)])
    rmr = by_type(secs, REAL_MODE_REGION)
    assert rmr["error"] == ERR_INVALID_DEST
    assert res.written[-1][1] - res.written[-1][0] == 90_000 * CHUNK
    assert len(ram) <= 5                             # extents, not chunks


# -- through the actors ----------------------------------------------------------------------------
def run(text: str):
    return sim.run(scenario.loads(text, "<test>"), keep_sched=True)


STORY = """
name = "t"
[firmware]
flavour = "{flavour}"
[workload]
kernel = "600M"
user = "2G"
[[script]]
name = "faults"
actor = "firmware"
run = {faults}
[[script]]
name = "kdump"
actor = "kernel"
after = ["faults"]
run = ["echo 1 > /sys/kernel/fadump_registered", "echo c > /proc/sysrq-trigger"]
[[script]]
name = "save"
actor = "capture"
run = ["cat /sys/kernel/fadump_registered"]
"""


NEVER = "inject copy-error source rmr at chunk 18"     # the region has chunks 0..17


def story(flavour: str, *faults: str):
    fl = "[" + ", ".join(f'"{f}"' for f in faults or (NEVER,)) + "]"
    return run(STORY.format(flavour=flavour, faults=fl))


def test_hardware_copy_error_is_not_valid_on_powervm_and_incomplete_on_qemu():
    # the 0x2000 status is reachable: PowerVM leaves it, QEMU overwrites it with 0xC000
    pvm = story("powervm", "inject copy-error hardware rmr at chunk 3")
    assert pvm.dump["status"] == "invalid"
    assert "Dump taken by platform is not valid" in pvm.kernel_log
    qemu = story("qemu", "inject copy-error hardware rmr at chunk 3")
    assert qemu.dump["status"] == "incomplete"
    assert "Dump taken by platform is incomplete" in qemu.kernel_log
    assert "Dump taken by platform is not valid" not in qemu.kernel_log


def booted_status(flavour: str, *faults: str) -> tuple[int, str]:
    """The header status in the capture kernel's ibm,kernel-dump, and the dump's fate."""
    seen: list[int] = []

    def watch(_sched, ev) -> None:
        if ev.type == "fw.boot" and ev.dst == "capture" and ev.payload["dt"]["kernel_dump"]:
            seen.append(ev.payload["dt"]["kernel_dump"]["status"])
    fl = "[" + ", ".join(f'"{f}"' for f in faults or (NEVER,)) + "]"
    res = sim.run(scenario.loads(STORY.format(flavour=flavour, faults=fl), "<t>"), observers=[watch])
    return seen[0], res.dump["status"]


@pytest.mark.parametrize("faults, qemu_dump, powervm", [
    ((), "available", (0, "available")),
    (("inject copy-error source rmr at chunk 2",), "invalid", (0, "invalid")),
    (("inject copy-error destination",), "invalid", (0, "invalid")),
    (("inject copy-error hardware rmr at chunk 2",), "incomplete", (0x2000, "invalid")),
])
def test_status_after_os_term_is_0xc000_on_qemu_whatever_happened(faults, qemu_dump, powervm):
    assert booted_status("qemu", *faults) == (0xC000, qemu_dump)
    assert booted_status("powervm", *faults) == powervm


def test_qemu_cpu_state_hardware_error_powers_the_guest_off_without_a_dump():
    res = story("qemu", "inject copy-error hardware cpu")
    assert res.dump["status"] == "none"
    assert res.sched.actors["firmware"].boots == 1
    assert res.transcript[-1]["script"] == "kdump"          # the capture scripts never ran


def test_user_pages_overwritten_follow_the_chunk_that_failed():
    full = story("powervm")
    assert full.dump["user_pages_overwritten"] == BMS // PS == 9216
    for n in (0, 4, 10):
        res = story("powervm", f"inject copy-error destination rmr at chunk {n}")
        assert res.dump["status"] == "invalid"
        fw = res.sched.actors["firmware"]
        rmr_written = sum(b - a for a, b, t in fw.written if t == REAL_MODE_REGION)
        assert rmr_written == n * CHUNK
        # the destination starts 0x3000 past a page boundary: the written prefix touches
        # n * 512 pages plus the page it starts in (all of the area is user memory here)
        assert res.dump["user_pages_overwritten"] == (n * CHUNK // PS + 1 if n else 1)


def test_old_copy_error_grammar_still_flags_every_section():
    res = story("powervm", "inject copy-error destination")
    fdm = res.sched.actors["capture"].fw.fdm_active
    assert res.dump["status"] == "invalid"
    assert "Dump taken by platform is not valid" in res.kernel_log
    out = [t for t in res.transcript if t["script"] == "faults"][0]["stdout"]
    assert out == "the next dump copy will fail on the destination side of every section at chunk 0\n"
    assert fdm is None                            # invalidated by the capture kernel


def test_firmware_snapshot_names_flavour_and_what_was_written():
    res = story("qemu")
    snap = res.sched.actors["firmware"].snapshot()
    assert snap["flavour"] == "qemu" and snap["copy_faults"] == []
    assert [w[2] for w in snap["written"]] == [CPU_STATE_DATA, REAL_MODE_REGION]


# -- scenario format and command grammar -----------------------------------------------------------
def test_flavour_defaults_to_powervm_and_bad_values_are_input_errors():
    assert scenario.loads('name = "x"').flavour == "powervm"
    assert scenario.loads('name = "x"\n[firmware]\nflavour = "qemu"').flavour == "qemu"
    for bad in ('[firmware]\nflavour = "phyp"', '[firmware]\nflavour = 1', '[firmware]\nmode = "qemu"',
                'firmware = "qemu"'):
        with pytest.raises(scenario.ScenarioError, match=r"firmware"):
            scenario.loads('name = "x"\n' + bad)


def test_bad_flavour_exits_2_with_one_line(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('name = "x"\n[firmware]\nflavour = "kvm"\n')
    r = subprocess.run([sys.executable, "-m", "fadumpsim.cli", "run", str(p)],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "[firmware] flavour" in r.stderr and "'kvm'" in r.stderr


def test_with_flavour_overrides_a_scenario_for_compare():
    data = scenario.load("hole-before-registration-powervm").data
    assert scenario.flavours() == ("powervm", "qemu")
    q = scenario.with_flavour(data, "qemu")
    assert q["firmware"]["flavour"] == "qemu" and data["firmware"]["flavour"] == "powervm"
    res = sim.run(scenario.Scenario(q, "<q>"))
    assert "firmware-assisted kernel dump registration is successful" in res.kernel_log
    with pytest.raises(scenario.ScenarioError):
        scenario.with_flavour(data, "kvm")


@pytest.mark.parametrize("text, want", [
    ("inject copy-error source", ("source", "", 0)),
    ("inject copy-error destination rmr", ("destination", "rmr", 0)),
    ("inject copy-error source cpu", ("source", "cpu", 0)),
    ("inject copy-error hardware hpte at chunk 7", ("hardware", "hpte", 7)),
    ("inject copy-error destination at chunk 0x10", ("destination", "", 16)),
])
def test_copy_error_grammar(text, want):
    c = parse_command("firmware", text)
    assert (c["side"], c["section"], c["chunk"]) == want


def test_grammar_and_copier_name_the_same_sides_and_sections():
    from fadumpsim.actors.commands import COPY_SECTIONS, COPY_SIDES
    from fadumpsim.actors.firmware_copy import FAIL_ORDER, SECTION_TYPES
    assert set(COPY_SECTIONS) == set(SECTION_TYPES) and set(COPY_SIDES) == set(FAIL_ORDER)


@pytest.mark.parametrize("text", [
    "inject copy-error", "inject copy-error both", "inject copy-error source rmr at 3",
    "inject copy-error source rmr at chunk", "inject copy-error source rmr at chunk -1",
    "inject copy-error source rmr chunk 3", "inject copy-error source boot",
    "inject copy-error source rmr at chunk 1 2",
])
def test_copy_error_grammar_refuses(text):
    with pytest.raises(CommandError):
        parse_command("firmware", text)


def test_hole_story_rtas_answers_per_flavour():
    data = scenario.load("hole-before-registration-powervm").data
    answers = {}
    for fl in scenario.flavours():
        res = sim.run(scenario.Scenario(scenario.with_flavour(data, fl), "<hole>"), keep_sched=True)
        answers[fl] = [rc for _seq, cmd, rc in res.sched.actors["firmware"].calls if cmd == REGISTER]
        assert res.dump["status"] == {"powervm": "none", "qemu": "invalid"}[fl]
    assert answers == {"powervm": [-3], "qemu": [0]}


def test_compare_flavours_runs_each_profile_on_each_firmware():
    from fadumpsim import compare as cmp
    rows = cmp.compare("hole-before-registration-powervm", cmp.parse_profiles("rfc-v6,classic"),
                       0, ["powervm", "qemu"])
    got = [(r.profile, r.flavour, r.registered, r.dump) for r in rows]
    assert got == [("rfc-v6 @powervm", "powervm", False, "none"), ("rfc-v6 @qemu", "qemu", True, "invalid"),
                   ("classic @powervm", "powervm", False, "none"), ("classic @qemu", "qemu", True, "invalid")]
    plain = cmp.compare("qemu-story", cmp.parse_profiles("rfc-v6"), 0)
    assert [(r.profile, r.flavour) for r in plain] == [("rfc-v6", "qemu")]


def test_compare_cli_refuses_an_unknown_flavour():
    r = subprocess.run([sys.executable, "-m", "fadumpsim.cli", "compare", "qemu-story",
                        "--profiles", "rfc-v6", "--flavours", "powervm,kvm", "--explore", "0"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "--flavours" in r.stderr and "'kvm'" in r.stderr
