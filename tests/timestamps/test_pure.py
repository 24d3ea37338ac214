import socket
import struct
import time

import pytest

from benchmarks.stamps import ClientHealth, TokenTimes, percentile
from locust_llm import timestamps as ts
from locust_llm.metrics.health import symptoms


@pytest.mark.skipif(not ts.kernel_timestamps_supported(), reason="SO_TIMESTAMPNS unsupported")
def test_constants_make_the_kernel_stamp_a_datagram():
    # the option number and the control-message room are what the kernel takes: a loopback
    # datagram read with them carries one SCM_TIMESTAMPNS stamp of about now
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        rx.bind(("127.0.0.1", 0))
        rx.setsockopt(socket.SOL_SOCKET, ts.SO_TIMESTAMPNS, 1)
        before = time.time_ns()
        tx.sendto(b"x", rx.getsockname())
        rx.settimeout(5)
        data, anc, flags, _ = rx.recvmsg(16, ts.ANCILLARY_SPACE)
        after = time.time_ns()
    finally:
        rx.close()
        tx.close()
    assert data == b"x" and not flags & socket.MSG_CTRUNC
    stamp = ts.parse_timestamp_cmsgs(anc)
    assert stamp is not None and before - 1_000_000 <= stamp <= after


def test_timespec_and_cmsg_parsing():
    data = struct.pack("@qq", 1_763_790_000, 123_456_789)
    assert ts.timespec_to_ns(data) == 1_763_790_000_123_456_789
    anc = [(socket.SOL_SOCKET, ts.SCM_TIMESTAMPNS, data)]
    assert ts.parse_timestamp_cmsgs(anc) == 1_763_790_000_123_456_789
    # other cmsgs are skipped, the stamp is found among them
    other = [(socket.IPPROTO_IP, 8, b"\x00" * 4), (socket.SOL_SOCKET, 29, b"\x00" * 16)]
    assert ts.parse_timestamp_cmsgs(other + anc) == 1_763_790_000_123_456_789
    # none, or truncated (MSG_CTRUNC leaves a short payload): no stamp
    assert ts.parse_timestamp_cmsgs([]) is None
    assert ts.parse_timestamp_cmsgs(other) is None
    assert ts.parse_timestamp_cmsgs([(socket.SOL_SOCKET, ts.SCM_TIMESTAMPNS, data[:8])]) is None


class FakeClocks:
    """perf and real clocks with a known offset and a jittery bracket."""

    def __init__(self, offset_ns, jitter=(900, 40, 700, 300)):
        self.perf = 5_000_000_000
        self.offset = offset_ns  # perf - real
        self.jitter = list(jitter)
        self.i = 0

    def perf_ns(self):
        self.perf += self.jitter[self.i % len(self.jitter)]
        self.i += 1
        return self.perf

    def real_ns(self):
        # real is read at the midpoint of a tick: the truth the map must recover
        self.perf += 20
        v = self.perf - self.offset
        self.perf += 20
        return v


def test_clock_map_offset_and_conversion():
    f = FakeClocks(offset_ns=-1_700_000_000_000_000_000)
    cm = ts.ClockMap(samples=16, real_ns=f.real_ns, perf_ns=f.perf_ns)
    # the tightest bracket (40 ns jitter + 40 ns) bounds the error by half its width
    assert abs(cm.offset_ns - f.offset) <= cm.width_ns // 2 + 1
    assert cm.width_ns <= 40 + 40 + 40
    real = 1_700_000_123_456_789_000
    assert cm.to_perf(real) == pytest.approx((real + f.offset) / 1e9, abs=1e-7)


def test_clock_map_real_clocks_tight():
    cm = ts.ClockMap()
    assert cm.width_ns < 50_000  # tightest of 32 brackets: well under 50 us
    import time

    a = time.perf_counter()
    r = time.time_ns()
    b = time.perf_counter()
    assert a - 1e-4 <= cm.to_perf(r) <= b + 1e-4


def test_clock_step_detected_on_recheck():
    f = FakeClocks(offset_ns=10**18)
    cm = ts.ClockMap(samples=8, real_ns=f.real_ns, perf_ns=f.perf_ns, step_threshold_ns=1_000_000)
    assert cm.recheck() == pytest.approx(0, abs=1000)
    assert cm.steps == 0
    f.offset -= 250_000_000  # wall clock stepped forward by 250 ms
    delta = cm.recheck()
    assert delta == pytest.approx(-250_000_000, abs=1000)
    assert cm.steps == 1 and cm.checks == 2
    f.offset += 300_000  # a slew-sized move is adopted but not counted as a step
    cm.recheck()
    assert cm.steps == 1


def test_shared_read_detection_and_itl_policy():
    # tokens 0..5; tokens 2,3 came from one read (seq 12); token 5's read filled the buffer
    user = [1.0, 2.0, 3.5, 3.5001, 4.0, 5.0]
    stamp = [0.9, 1.9, 3.2, 3.2, 3.9, 4.9]
    seq = [10, 11, 12, 12, 13, 14]
    kind = [ts.KERNEL, ts.KERNEL, ts.KERNEL, ts.KERNEL, ts.KERNEL, ts.FULL]
    a = ts.analyze_tokens(user, stamp, seq, kind)
    assert a.shared_flags == [False, False, True, False, False, True]
    assert a.shared == 2 and a.own == 4 and a.fallbacks == 0
    # gaps (1,2), (2,3) touch the shared token 2; (4,5) touches the FULL token 5
    assert a.itl == pytest.approx([1.0, 0.7])  # 5 gaps, 3 left out
    assert a.times == stamp
    # one lateness sample per read: its first token's parse time − the read's stamp
    assert a.read_lateness == pytest.approx([0.1, 0.1, 0.3, 0.1, 0.1])


def test_fallback_counting():
    user = [1.0, 2.0, 3.0]
    stamp = [1.0, 1.95, 3.0]  # fallback tokens carry perf_counter at read
    seq = [1, 2, 3]
    kind = [ts.FALLBACK, ts.KERNEL, ts.FALLBACK]
    a = ts.analyze_tokens(user, stamp, seq, kind)
    assert a.fallbacks == 2 and a.own == 1 and a.shared == 0
    assert a.itl == pytest.approx([0.95, 1.05])  # kept, at user-space quality
    assert a.read_lateness == pytest.approx([0.05])


def test_user_mode_analysis():
    a = ts.analyze_tokens([1.0, 1.5, 2.5])
    assert a.mode == "user" and a.itl == [0.5, 1.0] and a.own == 0 and a.shared == 0


def test_token_times_recorder_with_fake_socket():
    class S:
        ts_last, ts_seq, ts_kind = 0.0, 0, ts.FALLBACK

    s = S()
    rec = TokenTimes(ts.StampReader(s))
    s.ts_last, s.ts_seq, s.ts_kind = 10.0, 1, ts.KERNEL
    assert rec.mark() == 10.0
    s.ts_last, s.ts_seq = 10.5, 2
    rec.mark()
    rec.mark()  # same read as the previous token
    a = rec.analyze()
    assert a.shared_flags == [False, True, False]
    assert a.itl == []  # both gaps touch the shared token
    assert TokenTimes(None).analyze().mode == "user"


def test_health_figures_and_verdict():
    h = ClientHealth()
    h.add(ts.analyze_tokens([1.0, 2.0, 3.0], [0.999, 1.998, 2.9], [1, 2, 3], [ts.KERNEL] * 3))
    f = h.figures()
    assert f["tokens"] == 3 and f["own_stamp_share"] == 1.0 and f["shared_share"] == 0.0
    assert f["first_shared"] == 0 and f["late_shared_share"] == 0.0
    assert f["read_lateness_max_ms"] == pytest.approx(100.0)
    assert f["read_lateness_p50_ms"] == pytest.approx(2.0)
    bound, msg = symptoms(f["shared_share"], f["read_lateness_p99_ms"], itl_p50_ms=20.0)
    assert bound and "lateness p99" in msg and "--processes" in msg
    assert symptoms(0.02, 1.0, 20.0)[0]
    assert symptoms(0.005, 1.0, 20.0) == (False, "")
    assert symptoms(float("nan"), float("nan"), 20.0) == (False, "")


def test_percentile_matches_numpy():
    np = pytest.importorskip("numpy")
    vals = [5.0, 1.0, 3.0, 9.0, 2.5, 7.0]
    for q in (0, 50, 90, 99, 100):
        assert percentile(vals, q) == pytest.approx(float(np.percentile(vals, q)))
    assert percentile([], 50) != percentile([], 50)  # NaN


def test_first_token_sharing_kept_apart_for_the_verdict():
    # role chunk + first content chunk in one read: expected, not a late reader
    a = ts.analyze_tokens([1.0, 1.0, 2.0, 3.0], [0.9, 0.9, 1.9, 2.9], [5, 5, 6, 7], [ts.KERNEL] * 4)
    assert a.shared_flags[0] and a.shared == 1 and len(a.itl) == 2
    h = ClientHealth()
    h.add(a)
    f = h.figures()
    assert f["shared_share"] == 0.25 and f["late_shared_share"] == 0.0 and f["first_shared"] == 1
