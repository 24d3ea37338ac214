from locust_llm.backends.topology import (
    format_cpulist,
    parse_cpulist,
    parse_lscpu_p,
    parse_node_meminfo,
    read_cpu_topology,
)

from .conftest import FIXTURES


def test_cpulist_roundtrip():
    assert parse_cpulist("0-3,8,10-11\n") == [0, 1, 2, 3, 8, 10, 11]
    assert parse_cpulist("") == []
    assert format_cpulist([11, 0, 1, 2, 3, 8, 10]) == "0-3,8,10-11"
    assert format_cpulist([5]) == "5"


def test_meminfo():
    assert parse_node_meminfo("Node 1 MemTotal:       4812272 kB\nNode 1 MemFree: 1 kB") == 4812272
    assert parse_node_meminfo("") == 0


def test_two_socket_two_nodes(sysfs):
    t = read_cpu_topology(sysfs("sysfs-2s96c-2numa"))
    assert [n.id for n in t.nodes] == [0, 1]
    assert len(t.cpus) == 192 and t.threads_per_core == 2
    assert t.physical_cores(0) == list(range(48))
    assert t.physical_cores(1) == list(range(48, 96))
    assert t.siblings(5) == [5, 101] and t.siblings(101) == [5, 101]
    assert t.node(1).mem_kib == 780_000_000


def test_two_socket_four_nodes(sysfs):
    t = read_cpu_topology(sysfs("sysfs-2s96c-4numa"))
    assert [n.id for n in t.nodes] == [0, 1, 2, 3]
    assert t.physical_cores(1) == list(range(24, 48))
    assert t.physical_cores(3) == list(range(72, 96))
    assert sorted(t.node(2).cpus) == list(range(48, 72)) + list(range(144, 168))


def test_vm_one_node(sysfs):
    t = read_cpu_topology(sysfs("sysfs-vm-1node"))
    assert len(t.nodes) == 1 and t.physical_cores(0) == [0, 1, 2, 3]
    assert t.siblings(6) == [2, 6]


def test_h200_sysfs_matches_lscpu(sysfs):
    from_sysfs = read_cpu_topology(sysfs("h200x2/sysfs.txt"))
    from_lscpu = parse_lscpu_p((FIXTURES / "h200x2" / "lscpu-p.txt").read_text())
    assert from_lscpu.source == "lscpu"
    assert [n.cpus for n in from_sysfs.nodes] == [n.cpus for n in from_lscpu.nodes]
    assert from_sysfs.physical_cores(0) == from_lscpu.physical_cores(0) == list(range(32))
    assert from_sysfs.node(0).mem_kib == 4812272


def test_missing_sysfs_falls_back(tmp_path):
    t = read_cpu_topology(tmp_path)  # empty tree, not /sys: no lscpu, cpu_count fallback
    assert len(t.nodes) == 1 and t.source == "cpu_count"


def test_memory_only_node_skipped(sysfs, tmp_path):
    root = sysfs("sysfs-vm-1node")
    d = root / "devices/system/node/node1"
    d.mkdir(parents=True)
    (d / "cpulist").write_text("\n")
    (d / "meminfo").write_text("Node 1 MemTotal: 1000 kB\n")
    assert [n.id for n in read_cpu_topology(root).nodes] == [0]
