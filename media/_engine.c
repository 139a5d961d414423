/* The native media engine: the RTP plane of `media.engine` in one thread.
 *
 * One thread, one epoll set: every call leg's UDP socket, a timerfd for the 20 ms media
 * clock (split into PHASES sub-ticks like media/clock.py) and an eventfd to stop. The
 * thread never takes the GIL: everything it reads is plain C state or the buffers of
 * immutable bytes objects whose references the Python side holds (a play's frames), and
 * all it tells Python goes through a bounded event ring and an eventfd the event loop
 * watches. Python changes a leg under the engine's one mutex.
 *
 * Per packet (DESIGN.md, "Hot paths"): recvmmsg, two byte checks, latch on the first
 * packet (the socket is then connected to the peer, RFC 4961 symmetric RTP), then by
 * payload type: telephone-event to Python (RFC 4733) and to the bridged leg, audio relayed
 * to the bridged leg re-headed into its own stream (RFC 3550 §7.1: its SSRC, sequence
 * and timestamps, G.711 transcoded by a 256-byte table), placed on the call recording's
 * timeline (media/_timeline.c), or handed to Python for in-band DTMF detection.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "_analysis.h"
#include "_timeline.h"

#define PHASES 4
#define SUBTICK_NS 5000000LL
#define MAX_CATCH_UP 5
#define HIST_BUCKETS 1001 /* 0.1 ms buckets up to 100 ms, as media/clock.py */
#define EVENT_CAP 16384
#define EVENT_DATA 200
#define RECV_BATCH 16
#define PKT_MAX 1500
#define JB_SLOTS 16     /* relay playout buffer per leg: 320 ms of 20 ms frames */
#define JB_PAYLOAD 320  /* larger payloads are relayed at once */
#define SAMPLES_PER_SUBTICK 40 /* 5 ms at 8 kHz */
#define COALESCE_MARGIN_NS 300000LL /* a coalescing pause ends this long before a sub-tick */
#define COALESCE_MIN_NS 50000LL     /* shorter than this, no pause */
#define JB_TICK_READ 8 /* sub-ticks (40 ms): with a playout delay this deep, bridged legs are read on the clock */
#define JB_REANCHOR_LATE 40    /* sub-ticks (200 ms): later than this, the sender has moved on */

enum { EV_DTMF = 1, EV_AUDIO = 2, EV_DONE = 3 };
/* Repeats of one telephone event are handed to Python at most this often. Python's
   receiver (media/dtmf.py) takes the same event heard again within its window (1 s) of
   the previous packet as the same key press: handing a repeat over every 0.25 s keeps a
   long press one press, and a new press after a pause of 1 s or more still gets through. */
#define DTMF_REPEAT_S 0.25
enum { TAG_TIMER = 0xFFFFFFFEu, TAG_WAKE = 0xFFFFFFFFu };

/* What a leg plays: a tuple of items, each a tuple of non-empty bytes (one RTP payload
 * each), validated with the GIL when handed over. The thread reads them without the GIL:
 * tuples and bytes are immutable and the reference held here keeps them alive, so only
 * their fields are read (never a reference count). */
typedef struct {
    PyObject *items;
    Py_ssize_t n;
} Seq;

typedef struct {
    long long due; /* sub-tick number it leaves in */
    uint16_t len;
    unsigned char pkt[12 + JB_PAYLOAD];
} JbSlot;

typedef struct {
    int used;
    uint32_t gen;
    int fd;
    int phase;
    /* our outbound stream */
    uint32_t ssrc, ts;
    uint16_t seq;
    int pt, te_pt, codec;
    int sending, marker;
    struct sockaddr_in remote;
    int has_remote, latched, connected;
    /* playback */
    Seq main, loop;
    Py_ssize_t item, pos;
    int on_loop, playing;
    uint32_t play_id;
    unsigned char silence[160];
    /* bridging */
    int relay; /* index of the leg we relay what we hear to, or -1 */
    unsigned char xlate[256];
    int has_xlate;
    uint32_t relay_src, ts_offset;
    int has_relay_src;
    /* the relay playout buffer (media.relay_jitter_ms): what we relay leaves on our clock */
    JbSlot *jb;
    int jb_head, jb_n, jb_anchored;
    uint32_t jb_anchor_ts;
    long long jb_anchor_sub;
    unsigned long long jb_late, jb_overflow;
    /* what Python needs from the receive side */
    int inband;
    /* RFC 4733: the last telephone-event packet handed over, so an event's repeats (each
       20-50 ms, and the end packet sent 3 times) reach Python every DTMF_REPEAT_S only */
    uint32_t dtmf_ts, dtmf_ssrc;
    int dtmf_code, has_dtmf;
    double dtmf_posted;
    Timeline *rec; /* the call's recording: what we hear on channel 0, what we send on 1 */
    int drained; /* read on its own sub-tick, not woken for (see update_wake) */
    /* counters */
    unsigned long long rx_packets, rx_bad, rx_foreign, rx_unknown_pt, tx_packets, tx_dropped;
} Leg;

typedef struct {
    uint32_t leg, gen, kind, ts, ssrc, play_id;
    double t;
    uint16_t len;
    unsigned char data[EVENT_DATA];
} Event;

typedef struct {
    PyObject_HEAD
    pthread_mutex_t mu;
    pthread_t thread;
    int running;
    int ep, tfd, wakefd, notifyfd;
    Leg *legs;
    uint32_t nlegs, caplegs;
    uint32_t *freelist;
    uint32_t nfree;
    int *phase_members[PHASES];
    uint32_t phase_n[PHASES], phase_cap[PHASES];
    Event *events;
    uint32_t ev_head, ev_count;
    unsigned long long ev_dropped;
    int signalled;
    int stopping;
    long long start_ns;
    double now; /* monotonic seconds of the batch being handled: recorded packets' arrival */
    unsigned long long subticks, skipped, late_subticks;
    unsigned long long lateness[HIST_BUCKETS], work[HIST_BUCKETS];
    long long jb_depth; /* relay playout delay in sub-ticks; 0: relay as packets arrive */
    long long coalesce_ns; /* after packets woke the thread, sleep this long before the next
                              look (never across a sub-tick): more packets per wake-up */
    int realtime; /* 1 when the thread runs SCHED_FIFO */
    pid_t thread_tid; /* the media thread's id, for setpriority */
    int rt_error;
    int want_priority, want_nice; /* what `start` asked for, applied by the thread itself */
    long long want_slice_ns; /* EEVDF slice request (sched_attr.sched_runtime); 0: the default */
    long long slice_ns; /* the slice the kernel took; 0: none asked or not taken */
    int slice_error; /* errno of a refused slice request */
    int sched_done; /* the thread has applied its nice value and slice */
} Engine;

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static double now_s(void) { return (double)now_ns() / 1e9; }

static void hist_add(unsigned long long *h, long long ns) {
    long long idx = ns / 100000; /* 0.1 ms */
    if (idx < 0) idx = 0;
    if (idx > HIST_BUCKETS - 1) idx = HIST_BUCKETS - 1;
    h[idx]++;
}

/* -- events to Python ---------------------------------------------------------------- */

static Event *event_slot(Engine *e) {
    if (e->ev_count >= EVENT_CAP) {
        e->ev_dropped++;
        return NULL;
    }
    Event *ev = &e->events[(e->ev_head + e->ev_count) % EVENT_CAP];
    e->ev_count++;
    return ev;
}

static void post(Engine *e, uint32_t idx, uint32_t kind, const unsigned char *data, size_t len,
                 uint32_t ts, uint32_t ssrc, double t) {
    Event *ev = event_slot(e);
    if (ev == NULL) return;
    Leg *leg = &e->legs[idx];
    ev->leg = idx;
    ev->gen = leg->gen;
    ev->kind = kind;
    ev->ts = ts;
    ev->ssrc = ssrc;
    ev->t = t;
    ev->play_id = leg->play_id;
    if (len > EVENT_DATA) len = EVENT_DATA;
    ev->len = (uint16_t)len;
    if (len) memcpy(ev->data, data, len);
}

/* -- sending --------------------------------------------------------------------------- */

static void leg_send(Leg *leg, const unsigned char *pkt, size_t len) {
    ssize_t r;
    if (leg->connected)
        r = send(leg->fd, pkt, len, MSG_DONTWAIT);
    else
        r = sendto(leg->fd, pkt, len, MSG_DONTWAIT, (struct sockaddr *)&leg->remote, sizeof leg->remote);
    if (r < 0 && errno == ECONNREFUSED) /* an ICMP error for an earlier frame: this one still goes */
        r = leg->connected ? send(leg->fd, pkt, len, MSG_DONTWAIT)
                           : sendto(leg->fd, pkt, len, MSG_DONTWAIT, (struct sockaddr *)&leg->remote,
                                    sizeof leg->remote);
    if (r < 0) leg->tx_dropped++;
    else leg->tx_packets++;
}

static void put_header(unsigned char *h, int b1, uint16_t seq, uint32_t ts, uint32_t ssrc) {
    h[0] = 0x80;
    h[1] = (unsigned char)b1;
    h[2] = seq >> 8; h[3] = seq & 0xFF;
    h[4] = ts >> 24; h[5] = (ts >> 16) & 0xFF; h[6] = (ts >> 8) & 0xFF; h[7] = ts & 0xFF;
    h[8] = ssrc >> 24; h[9] = (ssrc >> 16) & 0xFF; h[10] = (ssrc >> 8) & 0xFF; h[11] = ssrc & 0xFF;
}

static uint32_t be32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* RFC 3550 §5.3.1: the payload starts after the CSRC list and any header extension. */
static long payload_offset(const unsigned char *d, size_t len) {
    size_t off = 12 + 4 * (size_t)(d[0] & 0x0F);
    if (d[0] & 0x10) {
        if (len < off + 4) return -1;
        off += 4 + 4 * (size_t)(((unsigned)d[off + 2] << 8) | d[off + 3]);
    }
    return off > len ? -1 : (long)off;
}

static void next_item(Engine *e, uint32_t idx) {
    Leg *leg = &e->legs[idx];
    if (leg->loop.n) {
        leg->on_loop = 1;
        leg->item = leg->pos = 0;
        return;
    }
    leg->playing = 0;
    post(e, idx, EV_DONE, NULL, 0, 0, 0, now_s());
}

static void leg_tick(Engine *e, uint32_t idx) {
    Leg *leg = &e->legs[idx];
    if (leg->relay >= 0) return; /* bridged: the other leg's packets are our audio */
    const unsigned char *payload = leg->silence;
    Py_ssize_t n = 160;
    if (leg->playing) {
        Seq *s = leg->on_loop ? &leg->loop : &leg->main;
        PyObject *item = PyTuple_GET_ITEM(s->items, leg->item);
        PyObject *frame = PyTuple_GET_ITEM(item, leg->pos);
        payload = (const unsigned char *)PyBytes_AS_STRING(frame);
        n = PyBytes_GET_SIZE(frame);
        if (++leg->pos >= PyTuple_GET_SIZE(item)) {
            leg->pos = 0;
            if (++leg->item >= s->n) next_item(e, idx);
        }
    }
    if (!leg->has_remote || !leg->sending) return;
    if (leg->rec) timeline_place(leg->rec, 1, payload, (size_t)n, leg->ts, leg->ssrc, leg->codec, e->now);
    unsigned char pkt[12 + PKT_MAX];
    put_header(pkt, leg->pt | (leg->marker ? 0x80 : 0), leg->seq, leg->ts, leg->ssrc);
    leg->marker = 0;
    memcpy(pkt + 12, payload, (size_t)n);
    leg_send(leg, pkt, 12 + (size_t)n);
    leg->seq++;
    leg->ts += 160;
}

/* -- the relay playout buffer ---------------------------------------------------------------
 * Relayed audio otherwise leaves with the sender's jitter. With a depth D, a packet with
 * source timestamp ts leaves in sub-tick anchor + (ts - anchor_ts) / 40: the anchor is the
 * first sub-tick of the leg's own phase at least D after the packet that set it, so a
 * 20 ms stream leaves exactly every 20 ms, in the leg's slot of the clock, D later than
 * it came. A packet later than its slot (the sender stalled for more than D) goes at
 * once, behind whatever is queued, and the schedule stays: a sender that catches up is
 * back on it. A new source, a packet over 200 ms late or a jump ahead re-anchors; a full
 * buffer lets its oldest packet go at once. Telephone-events queue behind the audio
 * (sequence order) but never move the anchor. */

static long long subtick_now(Engine *e) { return (now_ns() - e->start_ns) / SUBTICK_NS; }

static void jb_send_due(Engine *e, Leg *leg, long long upto) {
    while (leg->jb_n && leg->jb[leg->jb_head].due <= upto) {
        JbSlot *slot = &leg->jb[leg->jb_head];
        leg_send(leg, slot->pkt, slot->len);
        leg->jb_head = (leg->jb_head + 1) % JB_SLOTS;
        leg->jb_n--;
    }
}

static void jb_drop(Leg *leg) {
    free(leg->jb);
    leg->jb = NULL;
    leg->jb_n = leg->jb_head = leg->jb_anchored = 0;
}

/* 1 when the packet was queued, 0 when it is to be sent now. */
static int jb_hold(Engine *e, Leg *dst, const unsigned char *pkt, size_t len, uint32_t ts, int audio) {
    if (e->jb_depth <= 0 || len > 12 + JB_PAYLOAD) return 0;
    if (!audio && dst->jb_n == 0) return 0; /* an event with nothing queued before it */
    if (dst->jb == NULL && (dst->jb = malloc(JB_SLOTS * sizeof *dst->jb)) == NULL) return 0;
    long long now = subtick_now(e), due;
    if (!audio) {
        due = dst->jb[(dst->jb_head + dst->jb_n - 1) % JB_SLOTS].due;
    } else {
        int32_t delta = (int32_t)(ts - dst->jb_anchor_ts);
        due = dst->jb_anchor_sub + delta / SAMPLES_PER_SUBTICK;
        if (dst->jb_anchored && due <= now && due > now - JB_REANCHOR_LATE) {
            /* late, but the sender will catch up: it goes now, and the schedule stays */
            dst->jb_late++;
            if (dst->jb_n == 0) return 0;
            due = dst->jb[(dst->jb_head + dst->jb_n - 1) % JB_SLOTS].due;
        } else if (!dst->jb_anchored || due <= now || due > now + e->jb_depth + 4 * JB_SLOTS) {
            long long first = now + e->jb_depth;
            first += ((dst->phase - first % PHASES) + PHASES) % PHASES;
            dst->jb_anchor_sub = due = first;
            dst->jb_anchor_ts = ts;
            dst->jb_anchored = 1;
        }
    }
    if (dst->jb_n == JB_SLOTS) { /* full: the oldest goes now */
        dst->jb_overflow++;
        jb_send_due(e, dst, dst->jb[dst->jb_head].due);
    }
    JbSlot *slot = &dst->jb[(dst->jb_head + dst->jb_n) % JB_SLOTS];
    slot->due = due;
    slot->len = (uint16_t)len;
    memcpy(slot->pkt, pkt, len);
    dst->jb_n++;
    return 1;
}

/* One packet from the bridged leg `src`, re-headed as part of `dst`'s stream. */
static void send_relayed(Engine *e, uint32_t src_idx, uint32_t dst_idx, const unsigned char *d,
                         size_t len, int pt, int audio) {
    Leg *src = &e->legs[src_idx], *dst = &e->legs[dst_idx];
    long off = payload_offset(d, len);
    if (off < 0) { src->rx_bad++; return; }
    uint32_t ts = be32(d + 4), ssrc = be32(d + 8);
    const unsigned char *payload = d + off;
    size_t n = len - (size_t)off;
    if (audio && src->rec) timeline_place(src->rec, 0, payload, n, ts, ssrc, src->codec, e->now);
    if (pt < 0 || !dst->has_remote || !dst->sending) return;
    if (!dst->has_relay_src || ssrc != dst->relay_src) { /* a new source: continue our timeline */
        dst->relay_src = ssrc;
        dst->has_relay_src = 1;
        dst->ts_offset = dst->ts - ts;
        dst->jb_anchored = 0;
    }
    uint32_t out_ts = ts + dst->ts_offset;
    unsigned char pkt[12 + PKT_MAX];
    if (n > PKT_MAX) n = PKT_MAX;
    if (audio && src->has_xlate) {
        for (size_t i = 0; i < n; i++) pkt[12 + i] = src->xlate[payload[i]];
    } else {
        memcpy(pkt + 12, payload, n);
    }
    if (dst->rec && pt == dst->pt)
        timeline_place(dst->rec, 1, pkt + 12, n, out_ts, dst->ssrc, dst->codec, e->now);
    put_header(pkt, pt | (d[1] & 0x80), dst->seq, out_ts, dst->ssrc);
    if (!jb_hold(e, dst, pkt, 12 + n, ts, audio)) leg_send(dst, pkt, 12 + n);
    dst->seq++;
    dst->ts = out_ts + 160;
}

/* -- receiving ----------------------------------------------------------------------------- */

static void on_packet(Engine *e, uint32_t idx, const unsigned char *d, size_t len,
                      const struct sockaddr_in *from) {
    Leg *leg = &e->legs[idx];
    if (len < 12 || (d[0] & 0xC0) != 0x80) { leg->rx_bad++; return; }
    if (!leg->latched) {
        leg->remote = *from;
        leg->has_remote = leg->latched = 1;
        leg->connected = connect(leg->fd, (const struct sockaddr *)from, sizeof *from) == 0;
    } else if (!leg->connected && (from->sin_addr.s_addr != leg->remote.sin_addr.s_addr ||
                                   from->sin_port != leg->remote.sin_port)) {
        leg->rx_foreign++;
        return;
    }
    leg->rx_packets++;
    int pt = d[1] & 0x7F;
    if (pt == leg->te_pt) {
        if (leg->relay >= 0) send_relayed(e, idx, (uint32_t)leg->relay, d, len, e->legs[leg->relay].te_pt, 0);
        long off = payload_offset(d, len);
        if (off < 0 || (size_t)off + 4 > len) { leg->rx_bad++; return; }
        uint32_t ts = be32(d + 4), ssrc = be32(d + 8);
        int code = d[off];
        if (leg->has_dtmf && ts == leg->dtmf_ts && ssrc == leg->dtmf_ssrc && code == leg->dtmf_code
            && e->now - leg->dtmf_posted < DTMF_REPEAT_S)
            return; /* the same event again: Python has it, and heard of it just now */
        leg->has_dtmf = 1;
        leg->dtmf_ts = ts;
        leg->dtmf_ssrc = ssrc;
        leg->dtmf_code = code;
        leg->dtmf_posted = e->now;
        post(e, idx, EV_DTMF, d + off, 4, ts, ssrc, e->now);
    } else if (pt == leg->pt) {
        if (leg->relay >= 0) {
            send_relayed(e, idx, (uint32_t)leg->relay, d, len, e->legs[leg->relay].pt, 1);
            return;
        }
        if (!leg->inband && !leg->rec) return;
        long off = payload_offset(d, len);
        if (off < 0) { leg->rx_bad++; return; }
        if (leg->inband) post(e, idx, EV_AUDIO, d + off, len - (size_t)off, be32(d + 4), be32(d + 8), e->now);
        if (leg->rec) timeline_place(leg->rec, 0, d + off, len - (size_t)off, be32(d + 4), be32(d + 8), leg->codec, e->now);
    } else if (pt >= 72 && pt <= 76) {
        /* RTCP multiplexed (RFC 5761 §4): not audio */
    } else {
        leg->rx_unknown_pt++;
    }
}

static void on_readable(Engine *e, uint32_t idx) {
    static unsigned char bufs[RECV_BATCH][PKT_MAX + 12];
    static struct mmsghdr msgs[RECV_BATCH];
    static struct iovec iovs[RECV_BATCH];
    static struct sockaddr_in addrs[RECV_BATCH];
    for (int round = 0; round < 4; round++) {
        Leg *leg = &e->legs[idx];
        for (int i = 0; i < RECV_BATCH; i++) {
            iovs[i].iov_base = bufs[i];
            iovs[i].iov_len = sizeof bufs[i];
            memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
            msgs[i].msg_hdr.msg_iov = &iovs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = &addrs[i];
            msgs[i].msg_hdr.msg_namelen = sizeof addrs[i];
        }
        /* The recordings this leg's packets land on, fetched while the kernel copies them:
         * its own (what the caller says) and, bridged, the other leg's (what it hears);
         * then the lines the packets will be written to. */
        Timeline *own = leg->rec, *heard = leg->relay >= 0 ? e->legs[leg->relay].rec : NULL;
        if (own) timeline_prefetch(own);
        if (heard) timeline_prefetch(heard);
        int n = recvmmsg(leg->fd, msgs, RECV_BATCH, MSG_DONTWAIT, NULL);
        e->now = now_s();
        if (own) timeline_prefetch_ring(own, 0);
        if (heard) timeline_prefetch_ring(heard, 1);
        if (n <= 0) {
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) leg->rx_bad++;
            return; /* ECONNREFUSED and friends: an ICMP error, reported once */
        }
        for (int i = 0; i < n && e->legs[idx].used; i++) {
            if (msgs[i].msg_hdr.msg_namelen < sizeof(struct sockaddr_in) ||
                addrs[i].sin_family != AF_INET) { e->legs[idx].rx_foreign++; continue; }
            on_packet(e, idx, bufs[i], msgs[i].msg_len, &addrs[i]);
        }
        if (n < RECV_BATCH) return;
    }
}

/* -- the media clock ---------------------------------------------------------------------- */

static void arm_timer(Engine *e) {
    long long due = e->start_ns + (long long)(e->subticks + 1) * SUBTICK_NS;
    struct itimerspec it;
    memset(&it, 0, sizeof it);
    it.it_value.tv_sec = due / 1000000000LL;
    it.it_value.tv_nsec = due % 1000000000LL;
    timerfd_settime(e->tfd, TFD_TIMER_ABSTIME, &it, NULL);
}

static void run_phase(Engine *e, int phase) {
    int drained = 0;
    for (uint32_t i = 0; i < e->phase_n[phase]; i++) {
        int idx = e->phase_members[phase][i];
        if (idx >= 0 && e->legs[idx].used) {
            leg_tick(e, (uint32_t)idx);
            drained |= e->legs[idx].drained;
        }
    }
    /* then what the phase's drained legs heard (update_wake): after every send, so that
     * reading never delays what this sub-tick sends */
    for (uint32_t i = 0; drained && i < e->phase_n[phase]; i++) {
        int idx = e->phase_members[phase][i];
        if (idx >= 0 && e->legs[idx].used && e->legs[idx].drained) on_readable(e, (uint32_t)idx);
    }
}

static void on_timer(Engine *e) {
    uint64_t expirations;
    if (read(e->tfd, &expirations, sizeof expirations) < 0) { /* spurious: re-armed below */ }
    long long started = now_ns();
    e->now = (double)started / 1e9;
    e->subticks++;
    long long due = e->start_ns + (long long)e->subticks * SUBTICK_NS;
    long long late = started - due;
    if (late < 0) { /* woken early (clock adjustments): not due yet */
        e->subticks--;
        arm_timer(e);
        return;
    }
    hist_add(e->lateness, late);
    if (late > SUBTICK_NS) e->late_subticks++;
    long long behind = late / SUBTICK_NS;
    if (behind > MAX_CATCH_UP * PHASES) { /* a long stall: drop what no receiver could use */
        long long dropped = behind - MAX_CATCH_UP * PHASES;
        e->skipped += (unsigned long long)(dropped / PHASES);
        e->subticks += (unsigned long long)dropped;
        behind -= dropped;
    }
    for (long long missed = behind; missed >= 0; missed--) {
        run_phase(e, (int)(e->subticks % PHASES));
        if (missed) e->subticks++;
    }
    if (e->jb_depth > 0)
        for (uint32_t i = 0; i < e->nlegs; i++)
            if (e->legs[i].used && e->legs[i].jb_n) jb_send_due(e, &e->legs[i], (long long)e->subticks);
    hist_add(e->work, now_ns() - started);
    arm_timer(e);
}

/* Linux >= 6.12 (EEVDF): a SCHED_OTHER thread may ask for a shorter slice than the
 * default (sched_attr.sched_runtime, 0.1-100 ms). A thread with a shorter slice gets an
 * earlier virtual deadline, and on waking it may preempt a thread with a longer one
 * (the scheduler's PREEMPT_SHORT), so the media clock's thread gets the core promptly
 * at each sub-tick without real-time priority or any privilege. Keeps the thread's nice
 * value. Older kernels accept the call and ignore the field, so the slice counts as taken
 * only when sched_getattr reads it back. Returns 0 or an errno (ENOTSUP: ignored). */
struct sb_sched_attr {
    uint32_t size, sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime, sched_deadline, sched_period;
    uint32_t sched_util_min, sched_util_max;
};

static int set_slice(pid_t tid, long long slice_ns) {
#if defined(SYS_sched_setattr) && defined(SYS_sched_getattr)
    struct sb_sched_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.size = sizeof attr;
    attr.sched_policy = SCHED_OTHER;
    errno = 0;
    int nice_now = getpriority(PRIO_PROCESS, (id_t)tid);
    if (nice_now == -1 && errno) return errno;
    attr.sched_nice = nice_now;
    attr.sched_runtime = (uint64_t)slice_ns;
    if (syscall(SYS_sched_setattr, tid, &attr, 0) != 0) return errno;
    struct sb_sched_attr back;
    memset(&back, 0, sizeof back);
    if (syscall(SYS_sched_getattr, tid, &back, sizeof back, 0) != 0) return errno;
    return back.sched_runtime == (uint64_t)slice_ns ? 0 : ENOTSUP;
#else
    (void)tid;
    (void)slice_ns;
    return ENOSYS;
#endif
}

static void *engine_main(void *arg) {
    Engine *e = arg;
    pid_t tid = (pid_t)syscall(SYS_gettid);
    pthread_setname_np(pthread_self(), "sb-media"); /* as media/osthread.py names the others */
    int nice_error = 0, slice_error = 0;
    long long slice_ns = 0;
    if (e->want_priority == 0) { /* SCHED_FIFO is set from outside; never undo it here */
        if (e->want_nice != 0 && setpriority(PRIO_PROCESS, (id_t)tid, e->want_nice) != 0) nice_error = errno;
        if (e->want_slice_ns > 0) {
            slice_error = set_slice(tid, e->want_slice_ns);
            if (!slice_error) slice_ns = e->want_slice_ns;
        }
    }
    pthread_mutex_lock(&e->mu);
    e->thread_tid = tid;
    if (nice_error) e->rt_error = nice_error;
    e->slice_ns = slice_ns;
    e->slice_error = slice_error;
    e->sched_done = 1;
    pthread_mutex_unlock(&e->mu);
    struct epoll_event evs[128];
    for (;;) {
        int n = epoll_wait(e->ep, evs, 128, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            break;
        }
        pthread_mutex_lock(&e->mu);
        if (e->stopping) { pthread_mutex_unlock(&e->mu); break; }
        int packets = 0;
        for (int i = 0; i < n; i++) {
            uint64_t tag = evs[i].data.u64;
            uint32_t idx = (uint32_t)(tag & 0xFFFFFFFFu), gen = (uint32_t)(tag >> 32);
            if (idx == TAG_TIMER) {
                on_timer(e);
            } else if (idx == TAG_WAKE) {
                uint64_t v;
                if (read(e->wakefd, &v, sizeof v) < 0) { /* nothing to read */ }
            } else if (idx < e->nlegs && e->legs[idx].used && e->legs[idx].gen == gen) {
                on_readable(e, idx);
                packets = 1;
            }
        }
        int tell = e->ev_count && !e->signalled;
        if (tell) e->signalled = 1;
        long long coalesce = e->coalesce_ns, next_due = e->start_ns + (long long)(e->subticks + 1) * SUBTICK_NS;
        pthread_mutex_unlock(&e->mu);
        if (tell) {
            uint64_t one = 1;
            if (write(e->notifyfd, &one, sizeof one) < 0) { /* the counter is full: already told */ }
        }
        /* Woken by packets: let more arrive before looking again, as a NIC coalesces its
         * interrupts, so that one wake-up handles several (at 200 calls the packets alone
         * woke the thread 5,000 times a second). It ends before the next sub-tick is due. */
        if (packets && coalesce > 0) {
            long long now = now_ns(), until = now + coalesce;
            if (until > next_due - COALESCE_MARGIN_NS) until = next_due - COALESCE_MARGIN_NS;
            if (until - now >= COALESCE_MIN_NS) {
                struct timespec pause = {0, (long)(until - now)};
                nanosleep(&pause, NULL);
            }
        }
    }
    return NULL;
}

/* -- the Python type -------------------------------------------------------------------------- */

/* Python's side of the mutex: other Python threads may run while it waits. */
static void lock(Engine *e) {
    if (pthread_mutex_trylock(&e->mu) == 0) return;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&e->mu);
    Py_END_ALLOW_THREADS
}

static void unlock(Engine *e) { pthread_mutex_unlock(&e->mu); }

static Leg *get_leg(Engine *e, unsigned int idx) {
    if (idx >= e->nlegs || !e->legs[idx].used) {
        PyErr_Format(PyExc_KeyError, "no leg %u", idx);
        return NULL;
    }
    return &e->legs[idx];
}

static void seq_release(Seq *s, PyObject **later) {
    *later = s->items; /* decref'd by the caller once the lock is released */
    memset(s, 0, sizeof *s);
}

/* A tuple of the non-empty items of `obj` (a sequence of sequences of bytes). */
static int seq_build(PyObject *obj, Seq *out) {
    memset(out, 0, sizeof *out);
    PyObject *outer = PySequence_Fast(obj, "items must be a sequence of frame sequences");
    if (outer == NULL) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(outer), kept = 0;
    PyObject *items = PyTuple_New(n);
    if (items == NULL) { Py_DECREF(outer); return -1; }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Tuple(PySequence_Fast_GET_ITEM(outer, i)); /* a tuple: itself */
        if (item == NULL) goto fail;
        Py_ssize_t frames = PyTuple_GET_SIZE(item);
        for (Py_ssize_t f = 0; f < frames; f++) {
            PyObject *frame = PyTuple_GET_ITEM(item, f);
            if (!PyBytes_Check(frame) || PyBytes_GET_SIZE(frame) == 0 || PyBytes_GET_SIZE(frame) > PKT_MAX) {
                Py_DECREF(item);
                PyErr_SetString(PyExc_TypeError, "frames must be non-empty bytes of at most 1500 bytes");
                goto fail;
            }
        }
        if (frames == 0) { Py_DECREF(item); continue; }
        PyTuple_SET_ITEM(items, kept++, item);
    }
    Py_DECREF(outer);
    if (kept < n && _PyTuple_Resize(&items, kept) < 0) return -1;
    out->items = items;
    out->n = kept;
    return 0;
fail:
    Py_DECREF(outer);
    Py_DECREF(items);
    return -1;
}

static void phase_remove(Engine *e, uint32_t idx) {
    Leg *leg = &e->legs[idx];
    int p = leg->phase;
    for (uint32_t i = 0; i < e->phase_n[p]; i++) {
        if (e->phase_members[p][i] == (int)idx) {
            /* keep the order: a stream keeps its place in its burst (even spacing) */
            memmove(&e->phase_members[p][i], &e->phase_members[p][i + 1],
                    (e->phase_n[p] - i - 1) * sizeof(int));
            e->phase_n[p]--;
            return;
        }
    }
}

static int phase_add(Engine *e, uint32_t idx) {
    int best = 0;
    for (int p = 1; p < PHASES; p++)
        if (e->phase_n[p] < e->phase_n[best]) best = p;
    if (e->phase_n[best] == e->phase_cap[best]) {
        uint32_t cap = e->phase_cap[best] ? e->phase_cap[best] * 2 : 64;
        int *m = realloc(e->phase_members[best], cap * sizeof(int));
        if (m == NULL) return -1;
        e->phase_members[best] = m;
        e->phase_cap[best] = cap;
    }
    e->phase_members[best][e->phase_n[best]++] = (int)idx;
    e->legs[idx].phase = best;
    return 0;
}

/* Which legs the thread reads on their own sub-tick (every 20 ms, after the phase's
 * sends) instead of waking for each packet: bridged legs when the relay playout delay is
 * JB_TICK_READ or deeper. What such a leg hears leaves on the playout schedule anyway, and
 * a packet read up to 20 ms after it came is still early for its slot. With a shallower
 * delay (or none) relaying stays immediate. The fd stays in the epoll set with no events
 * asked (errors still wake it). Called with the mutex held whenever `relay` or the
 * playout delay change. Reading recorded IVR legs on the clock too was tried: it saved
 * a fifth of the thread's time at 400 calls, but at 1,000 the longer sub-ticks made the
 * clock late and calls fail; capped at 32 per phase, it cost more than it saved at 200
 * bridged calls, whose legs wake the thread anyway (BENCHMARKS.md). */
static void update_wake(Engine *e, uint32_t idx) {
    Leg *leg = &e->legs[idx];
    int want = leg->relay >= 0 && e->jb_depth >= JB_TICK_READ;
    if (want == leg->drained) return;
    struct epoll_event ev = {.events = want ? 0 : EPOLLIN};
    ev.data.u64 = ((uint64_t)leg->gen << 32) | idx;
    if (epoll_ctl(e->ep, EPOLL_CTL_MOD, leg->fd, &ev) == 0) leg->drained = want;
}

static PyObject *Engine_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    Engine *e = (Engine *)type->tp_alloc(type, 0);
    if (e == NULL) return NULL;
    e->ep = e->tfd = e->wakefd = e->notifyfd = -1;
    pthread_mutex_init(&e->mu, NULL);
    e->events = PyMem_RawCalloc(EVENT_CAP, sizeof(Event));
    if (e->events == NULL) { Py_DECREF(e); return PyErr_NoMemory(); }
    e->ep = epoll_create1(EPOLL_CLOEXEC);
    e->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    e->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    e->notifyfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (e->ep < 0 || e->tfd < 0 || e->wakefd < 0 || e->notifyfd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        Py_DECREF(e);
        return NULL;
    }
    struct epoll_event ev = {.events = EPOLLIN};
    ev.data.u64 = TAG_TIMER;
    epoll_ctl(e->ep, EPOLL_CTL_ADD, e->tfd, &ev);
    ev.data.u64 = TAG_WAKE;
    epoll_ctl(e->ep, EPOLL_CTL_ADD, e->wakefd, &ev);
    return (PyObject *)e;
}

static void stop_thread(Engine *e) {
    if (!e->running) return;
    pthread_mutex_lock(&e->mu);
    e->stopping = 1;
    pthread_mutex_unlock(&e->mu);
    uint64_t one = 1;
    if (write(e->wakefd, &one, sizeof one) < 0) { /* full: the thread wakes anyway */ }
    Py_BEGIN_ALLOW_THREADS
    pthread_join(e->thread, NULL);
    Py_END_ALLOW_THREADS
    e->running = 0;
}

static void Engine_dealloc(Engine *e) {
    stop_thread(e);
    for (uint32_t i = 0; i < e->nlegs; i++) {
        Leg *leg = &e->legs[i];
        if (!leg->used) continue;
        PyObject *a = NULL, *b = NULL;
        seq_release(&leg->main, &a);
        seq_release(&leg->loop, &b);
        Py_XDECREF(a);
        Py_XDECREF(b);
        if (leg->rec) {
            timeline_bind(leg->rec, NULL);
            Py_DECREF(leg->rec);
        }
        jb_drop(leg);
    }
    free(e->legs);
    free(e->freelist);
    for (int p = 0; p < PHASES; p++) free(e->phase_members[p]);
    PyMem_RawFree(e->events);
    int fds[] = {e->ep, e->tfd, e->wakefd, e->notifyfd};
    for (int i = 0; i < 4; i++) if (fds[i] >= 0) close(fds[i]);
    pthread_mutex_destroy(&e->mu);
    Py_TYPE(e)->tp_free((PyObject *)e);
}

static PyObject *Engine_start(Engine *e, PyObject *args) {
    int priority = 0, nice_value = 0;
    long long slice_us = 0;
    if (!PyArg_ParseTuple(args, "|iiL", &priority, &nice_value, &slice_us)) return NULL;
    if (slice_us < 0 || slice_us > 100000) {
        PyErr_SetString(PyExc_ValueError, "the media thread's slice is 0 (default) to 100000 us");
        return NULL;
    }
    if (e->running) Py_RETURN_NONE;
    e->start_ns = now_ns();
    e->subticks = 0;
    e->stopping = 0;
    e->realtime = 0;
    e->rt_error = 0;
    e->want_priority = priority;
    e->want_nice = nice_value;
    e->want_slice_ns = slice_us * 1000;
    e->slice_ns = 0;
    e->slice_error = 0;
    e->sched_done = 0;
    e->thread_tid = 0;
    arm_timer(e);
    int err = pthread_create(&e->thread, NULL, engine_main, e);
    if (err) { errno = err; return PyErr_SetFromErrno(PyExc_OSError); }
    e->running = 1;
    if (priority > 0) {
        struct sched_param sp = {.sched_priority = priority};
        int rte = pthread_setschedparam(e->thread, SCHED_FIFO, &sp);
        lock(e);
        e->rt_error = rte;
        e->realtime = rte == 0;
        unlock(e);
    }
    int done = 0;
    for (int i = 0; i < 2000 && !done; i++) { /* the thread applies its nice value and slice at once */
        lock(e);
        done = e->sched_done;
        unlock(e);
        if (!done) usleep(100);
    }
    lock(e);
    pid_t tid = e->thread_tid;
    int fallback = done && priority > 0 && !e->realtime && e->want_slice_ns > 0;
    unlock(e);
    if (fallback) { /* SCHED_FIFO refused: the thread stays normal, so it asks for the slice */
        int serr = set_slice(tid, e->want_slice_ns);
        lock(e);
        e->slice_error = serr;
        e->slice_ns = serr ? 0 : e->want_slice_ns;
        unlock(e);
    }
    Py_RETURN_NONE;
}

static PyObject *Engine_sched(Engine *e, PyObject *unused) {
    /* (thread id, slice the kernel took in ns or 0, errno of a refused slice) */
    lock(e);
    pid_t tid = e->thread_tid;
    long long slice = e->slice_ns;
    int err = e->slice_error;
    unlock(e);
    return Py_BuildValue("iLi", (int)tid, slice, err);
}

static PyObject *Engine_set_coalesce(Engine *e, PyObject *args) {
    int us;
    if (!PyArg_ParseTuple(args, "i", &us)) return NULL;
    if (us < 0 || us > 4000) {
        PyErr_SetString(PyExc_ValueError, "the receive coalescing delay is 0 to 4000 us");
        return NULL;
    }
    lock(e);
    e->coalesce_ns = us * 1000LL;
    unlock(e);
    Py_RETURN_NONE;
}

static PyObject *Engine_set_relay_jitter(Engine *e, PyObject *args) {
    int ms;
    if (!PyArg_ParseTuple(args, "i", &ms)) return NULL;
    if (ms < 0 || ms > 1000) {
        PyErr_SetString(PyExc_ValueError, "the relay playout delay is 0 to 1000 ms");
        return NULL;
    }
    lock(e);
    e->jb_depth = (ms * 1000000LL + SUBTICK_NS - 1) / SUBTICK_NS;
    if (e->jb_depth == 0)
        for (uint32_t i = 0; i < e->nlegs; i++) {
            if (!e->legs[i].used) continue;
            jb_send_due(e, &e->legs[i], LLONG_MAX); /* what was held goes now */
            jb_drop(&e->legs[i]);
        }
    for (uint32_t i = 0; i < e->nlegs; i++)
        if (e->legs[i].used) update_wake(e, i);
    unlock(e);
    Py_RETURN_NONE;
}

static PyObject *Engine_stop(Engine *e, PyObject *unused) {
    stop_thread(e);
    Py_RETURN_NONE;
}

static PyObject *Engine_fileno(Engine *e, PyObject *unused) { return PyLong_FromLong(e->notifyfd); }

static PyObject *Engine_add(Engine *e, PyObject *args) {
    int fd;
    unsigned int ssrc, ts, seq;
    if (!PyArg_ParseTuple(args, "iIII", &fd, &ssrc, &seq, &ts)) return NULL;
    lock(e);
    uint32_t idx;
    if (e->nfree) {
        idx = e->freelist[--e->nfree];
    } else {
        if (e->nlegs == e->caplegs) {
            uint32_t cap = e->caplegs ? e->caplegs * 2 : 256;
            Leg *legs = realloc(e->legs, cap * sizeof *legs);
            uint32_t *fl = realloc(e->freelist, cap * sizeof *fl);
            if (legs) e->legs = legs;
            if (fl) e->freelist = fl;
            if (legs == NULL || fl == NULL) { unlock(e); return PyErr_NoMemory(); }
            e->caplegs = cap;
        }
        idx = e->nlegs++;
        e->legs[idx].gen = 0;
    }
    Leg *leg = &e->legs[idx];
    uint32_t gen = leg->gen + 1;
    memset(leg, 0, sizeof *leg);
    leg->gen = gen;
    leg->used = 1;
    leg->fd = fd;
    leg->ssrc = ssrc;
    leg->seq = (uint16_t)seq;
    leg->ts = ts;
    leg->te_pt = -1;
    leg->relay = -1;
    leg->sending = 1;
    memset(leg->silence, 0xFF, sizeof leg->silence);
    if (phase_add(e, idx) < 0) { leg->used = 0; e->freelist[e->nfree++] = idx; unlock(e); return PyErr_NoMemory(); }
    struct epoll_event ev = {.events = EPOLLIN};
    ev.data.u64 = ((uint64_t)gen << 32) | idx;
    if (epoll_ctl(e->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int err = errno;
        phase_remove(e, idx);
        leg->used = 0;
        e->freelist[e->nfree++] = idx;
        unlock(e);
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    unlock(e);
    return Py_BuildValue("(II)", idx, gen);
}

static PyObject *Engine_remove(Engine *e, PyObject *args) {
    unsigned int idx;
    if (!PyArg_ParseTuple(args, "I", &idx)) return NULL;
    lock(e);
    Leg *leg = get_leg(e, idx);
    if (leg == NULL) { unlock(e); return NULL; }
    epoll_ctl(e->ep, EPOLL_CTL_DEL, leg->fd, NULL);
    phase_remove(e, idx);
    for (uint32_t i = 0; i < e->nlegs; i++)
        if (e->legs[i].used && e->legs[i].relay == (int)idx) {
            e->legs[i].relay = -1;
            jb_drop(&e->legs[i]);
            update_wake(e, i);
        }
    PyObject *a = NULL, *b = NULL;
    seq_release(&leg->main, &a);
    seq_release(&leg->loop, &b);
    Timeline *rec = leg->rec;
    leg->rec = NULL;
    jb_drop(leg);
    leg->used = 0;
    e->freelist[e->nfree++] = idx;
    unlock(e);
    Py_XDECREF(a);
    Py_XDECREF(b);
    if (rec) {
        timeline_bind(rec, NULL);
        Py_DECREF(rec);
    }
    Py_RETURN_NONE;
}

static PyObject *Engine_configure(Engine *e, PyObject *args) {
    unsigned int idx;
    int pt, te_pt, codec, inband;
    Py_buffer silence;
    if (!PyArg_ParseTuple(args, "Iiiipy*", &idx, &pt, &te_pt, &codec, &inband, &silence)) return NULL;
    lock(e);
    Leg *leg = get_leg(e, idx);
    if (leg) {
        leg->pt = pt;
        leg->te_pt = te_pt;
        leg->codec = codec;
        leg->inband = inband;
        memset(leg->silence, 0xFF, sizeof leg->silence);
        memcpy(leg->silence, silence.buf, silence.len < 160 ? (size_t)silence.len : 160);
    }
    unlock(e);
    PyBuffer_Release(&silence);
    if (leg == NULL) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Engine_set_remote(Engine *e, PyObject *args) {
    unsigned int idx, port;
    const char *host;
    if (!PyArg_ParseTuple(args, "IsI", &idx, &host, &port)) return NULL;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (port > 65535 || inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        PyErr_Format(PyExc_ValueError, "not an IPv4 address and port: %s:%u", host, port);
        return NULL;
    }
    lock(e);
    Leg *leg = get_leg(e, idx);
    if (leg) {
        if (leg->connected) { /* dissolve the association: latch again */
            struct sockaddr unspec = {.sa_family = AF_UNSPEC};
            connect(leg->fd, &unspec, sizeof unspec);
            leg->connected = 0;
        }
        leg->remote = sa;
        leg->has_remote = 1;
        leg->latched = 0;
    }
    unlock(e);
    if (leg == NULL) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Engine_remote(Engine *e, PyObject *args) {
    unsigned int idx;
    if (!PyArg_ParseTuple(args, "I", &idx)) return NULL;
    lock(e);
    Leg *leg = get_leg(e, idx);
    if (leg == NULL) { unlock(e); return NULL; }
    int has = leg->has_remote, latched = leg->latched;
    struct sockaddr_in sa = leg->remote;
    unlock(e);
    if (!has) Py_RETURN_NONE;
    char host[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &sa.sin_addr, host, sizeof host);
    return Py_BuildValue("(sI)O", host, (unsigned)ntohs(sa.sin_port), latched ? Py_True : Py_False);
}

static PyObject *Engine_set_sending(Engine *e, PyObject *args) {
    unsigned int idx;
    int sending;
    if (!PyArg_ParseTuple(args, "Ip", &idx, &sending)) return NULL;
    lock(e);
    Leg *leg = get_leg(e, idx);
    if (leg) leg->sending = sending;
    unlock(e);
    if (leg == NULL) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Engine_record(Engine *e, PyObject *args) {
    /* record(leg, timeline or None): the leg's audio goes onto the timeline from now on
     * (what it hears on channel 0, what it sends on 1), placed by the media thread */
    unsigned int idx;
    PyObject *obj;
    if (!PyArg_ParseTuple(args, "IO", &idx, &obj)) return NULL;
    if (obj != Py_None && !PyObject_TypeCheck(obj, &TimelineType))
        return PyErr_Format(PyExc_TypeError, "record() takes a Timeline or None, not %s", Py_TYPE(obj)->tp_name);
    Timeline *tl = obj == Py_None ? NULL : (Timeline *)obj;
    lock(e);
    Leg *leg = get_leg(e, idx);
    if (leg == NULL) { unlock(e); return NULL; }
    Timeline *old = leg->rec;
    if (tl != NULL && tl != old && timeline_mutex(tl) != NULL) {
        unlock(e);
        PyErr_SetString(PyExc_ValueError, "that timeline already records a leg");
        return NULL;
    }
    if (tl == old) { unlock(e); Py_RETURN_NONE; }
    if (tl != NULL) { /* the GIL is held: nothing uses it unlocked before the thread does */
        Py_INCREF(tl);
        timeline_bind(tl, &e->mu);
    }
    leg->rec = tl;
    unlock(e);
    if (old != NULL) {
        timeline_bind(old, NULL);
        Py_DECREF(old);
    }
    Py_RETURN_NONE;
}

static PyObject *Engine_play(Engine *e, PyObject *args) {
    unsigned int idx;
    PyObject *main_obj, *loop_obj;
    if (!PyArg_ParseTuple(args, "IOO", &idx, &main_obj, &loop_obj)) return NULL;
    Seq main_seq, loop_seq;
    if (seq_build(main_obj, &main_seq) < 0) return NULL;
    if (seq_build(loop_obj, &loop_seq) < 0) {
        Py_DECREF(main_seq.items);
        return NULL;
    }
    PyObject *old[2] = {NULL, NULL};
    lock(e);
    Leg *leg = get_leg(e, idx);
    uint32_t play_id = 0;
    if (leg) {
        seq_release(&leg->main, &old[0]);
        seq_release(&leg->loop, &old[1]);
        leg->main = main_seq;
        leg->loop = loop_seq;
        leg->item = leg->pos = 0;
        leg->on_loop = main_seq.n == 0;
        leg->playing = main_seq.n > 0 || loop_seq.n > 0;
        leg->marker = 1;
        play_id = ++leg->play_id;
    }
    unlock(e);
    if (leg == NULL) {
        Py_DECREF(main_seq.items);
        Py_DECREF(loop_seq.items);
        return NULL;
    }
    for (int i = 0; i < 2; i++) Py_XDECREF(old[i]);
    return PyLong_FromUnsignedLong(play_id);
}

static PyObject *Engine_stop_play(Engine *e, PyObject *args) {
    unsigned int idx;
    if (!PyArg_ParseTuple(args, "I", &idx)) return NULL;
    PyObject *old[2] = {NULL, NULL};
    lock(e);
    Leg *leg = get_leg(e, idx);
    if (leg) {
        seq_release(&leg->main, &old[0]);
        seq_release(&leg->loop, &old[1]);
        leg->playing = 0;
        leg->play_id++;
    }
    unlock(e);
    for (int i = 0; i < 2; i++) Py_XDECREF(old[i]);
    if (leg == NULL) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Engine_playing(Engine *e, PyObject *args) {
    unsigned int idx;
    if (!PyArg_ParseTuple(args, "I", &idx)) return NULL;
    lock(e);
    Leg *leg = get_leg(e, idx);
    int playing = leg ? leg->playing : 0;
    unlock(e);
    if (leg == NULL) return NULL;
    return PyBool_FromLong(playing);
}

static PyObject *Engine_bridge(Engine *e, PyObject *args) {
    unsigned int a, b;
    PyObject *xa, *xb; /* 256-byte tables or None: what a hears, translated for b; and back */
    if (!PyArg_ParseTuple(args, "IIOO", &a, &b, &xa, &xb)) return NULL;
    PyObject *tables[2] = {xa, xb};
    for (int i = 0; i < 2; i++) {
        if (tables[i] != Py_None && (!PyBytes_Check(tables[i]) || PyBytes_GET_SIZE(tables[i]) != 256)) {
            PyErr_SetString(PyExc_TypeError, "a transcoding table is 256 bytes or None");
            return NULL;
        }
    }
    PyObject *old[4] = {NULL, NULL, NULL, NULL};
    lock(e);
    Leg *la = get_leg(e, a), *lb = la ? get_leg(e, b) : NULL;
    if (la && lb && a != b) {
        Leg *pair[2] = {la, lb};
        unsigned int other[2] = {b, a};
        for (int i = 0; i < 2; i++) {
            seq_release(&pair[i]->main, &old[2 * i]);
            seq_release(&pair[i]->loop, &old[2 * i + 1]);
            pair[i]->playing = 0;
            pair[i]->play_id++;
            pair[i]->relay = (int)other[i];
            jb_drop(pair[i]);
            pair[i]->has_relay_src = 0;
            pair[i]->has_xlate = tables[i] != Py_None;
            if (pair[i]->has_xlate) memcpy(pair[i]->xlate, PyBytes_AS_STRING(tables[i]), 256);
        }
        update_wake(e, a);
        update_wake(e, b);
    }
    unlock(e);
    for (int i = 0; i < 4; i++) Py_XDECREF(old[i]);
    if (la == NULL || lb == NULL) return NULL;
    if (a == b) { PyErr_SetString(PyExc_ValueError, "a leg cannot be bridged to itself"); return NULL; }
    Py_RETURN_NONE;
}

static PyObject *Engine_unbridge(Engine *e, PyObject *args) {
    unsigned int idx;
    if (!PyArg_ParseTuple(args, "I", &idx)) return NULL;
    lock(e);
    Leg *leg = get_leg(e, idx);
    if (leg && leg->relay >= 0) {
        Leg *other = &e->legs[leg->relay];
        uint32_t o = (uint32_t)leg->relay;
        if (other->used && other->relay == (int)idx) { other->relay = -1; jb_drop(other); update_wake(e, o); }
        leg->relay = -1;
        jb_drop(leg);
        update_wake(e, idx);
    }
    unlock(e);
    if (leg == NULL) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Engine_stats(Engine *e, PyObject *args) {
    unsigned int idx;
    if (!PyArg_ParseTuple(args, "I", &idx)) return NULL;
    lock(e);
    Leg *leg = get_leg(e, idx);
    if (leg == NULL) { unlock(e); return NULL; }
    Leg c = *leg;
    unlock(e);
    return Py_BuildValue("KKKKKKIIKKi", c.rx_packets, c.rx_bad, c.rx_foreign, c.rx_unknown_pt,
                         c.tx_packets, c.tx_dropped, (unsigned)c.seq, (unsigned)c.ts, c.jb_late,
                         c.jb_overflow, c.drained);
}

static PyObject *Engine_rx_counts(Engine *e, PyObject *unused) {
    /* {leg: rx_packets} for every leg: the once-a-second inactivity check reads them all */
    PyObject *out = PyDict_New();
    if (out == NULL) return NULL;
    lock(e);
    uint32_t n = e->nlegs;
    unsigned long long *counts = PyMem_RawMalloc((n ? n : 1) * sizeof *counts);
    char *used = PyMem_RawMalloc(n ? n : 1);
    if (counts && used) {
        for (uint32_t i = 0; i < n; i++) { used[i] = (char)e->legs[i].used; counts[i] = e->legs[i].rx_packets; }
    }
    unlock(e);
    if (counts == NULL || used == NULL) {
        PyMem_RawFree(counts); PyMem_RawFree(used); Py_DECREF(out); return PyErr_NoMemory();
    }
    for (uint32_t i = 0; i < n; i++) {
        if (!used[i]) continue;
        PyObject *k = PyLong_FromUnsignedLong(i), *v = PyLong_FromUnsignedLongLong(counts[i]);
        if (k == NULL || v == NULL || PyDict_SetItem(out, k, v) < 0) {
            Py_XDECREF(k); Py_XDECREF(v); Py_DECREF(out); out = NULL; break;
        }
        Py_DECREF(k); Py_DECREF(v);
    }
    PyMem_RawFree(counts);
    PyMem_RawFree(used);
    return out;
}

static PyObject *Engine_drain(Engine *e, PyObject *unused) {
    /* events as (leg, gen, kind, play_id, ts, ssrc, t, data) */
    uint64_t v;
    if (read(e->notifyfd, &v, sizeof v) < 0) { /* nothing pending */ }
    lock(e);
    e->signalled = 0;
    uint32_t count = e->ev_count;
    Event *evs = count ? PyMem_RawMalloc(count * sizeof *evs) : NULL;
    if (count && evs == NULL) count = 0;
    for (uint32_t i = 0; i < count; i++) evs[i] = e->events[(e->ev_head + i) % EVENT_CAP];
    e->ev_head = (e->ev_head + count) % EVENT_CAP;
    e->ev_count -= count;
    unlock(e);
    PyObject *events = PyList_New(0);
    for (uint32_t i = 0; i < count && events != NULL; i++) {
        Event *ev = &evs[i];
        PyObject *t = Py_BuildValue("(IIIIIIdy#)", ev->leg, ev->gen, ev->kind, ev->play_id, ev->ts,
                                    ev->ssrc, ev->t, (const char *)ev->data, (Py_ssize_t)ev->len);
        if (t == NULL || PyList_Append(events, t) < 0) Py_CLEAR(events);
        Py_XDECREF(t);
    }
    PyMem_RawFree(evs);
    return events;
}

static PyObject *hist_list(const unsigned long long *h) {
    PyObject *l = PyList_New(HIST_BUCKETS);
    if (l == NULL) return NULL;
    for (int i = 0; i < HIST_BUCKETS; i++) PyList_SET_ITEM(l, i, PyLong_FromUnsignedLongLong(h[i]));
    return l;
}

static PyObject *Engine_clock(Engine *e, PyObject *unused) {
    /* (subticks, skipped, late_subticks, lateness buckets, work buckets, realtime, rt_error,
     *  events dropped, streams) */
    unsigned long long late[HIST_BUCKETS], work[HIST_BUCKETS];
    lock(e);
    memcpy(late, e->lateness, sizeof late);
    memcpy(work, e->work, sizeof work);
    unsigned long long sub = e->subticks, skipped = e->skipped, lsub = e->late_subticks, evd = e->ev_dropped;
    unsigned streams = 0;
    for (int p = 0; p < PHASES; p++) streams += e->phase_n[p];
    int rt = e->realtime, rte = e->rt_error;
    unlock(e);
    return Py_BuildValue("KKKNNiiKI", sub, skipped, lsub, hist_list(late), hist_list(work), rt, rte,
                         evd, streams);
}

static PyMethodDef Engine_methods[] = {
    {"start", (PyCFunction)Engine_start, METH_VARARGS, "start([priority[, nice[, slice_us]]]): the media thread (SCHED_FIFO when priority > 0 and allowed; else the nice value and the EEVDF slice request)"},
    {"sched", (PyCFunction)Engine_sched, METH_NOARGS, "sched() -> (thread id, slice taken in ns or 0, errno of a refused slice request)"},
    {"stop", (PyCFunction)Engine_stop, METH_NOARGS, "stop the media thread"},
    {"set_coalesce", (PyCFunction)Engine_set_coalesce, METH_VARARGS, "set_coalesce(us): after packets woke the media thread, wait this long (never across a sub-tick) before looking again (0: at once)"},
    {"set_relay_jitter", (PyCFunction)Engine_set_relay_jitter, METH_VARARGS, "set_relay_jitter(ms): relayed audio leaves on the clock, ms later (0: as it arrives)"},
    {"fileno", (PyCFunction)Engine_fileno, METH_NOARGS, "the eventfd that is readable when drain() has something"},
    {"add", (PyCFunction)Engine_add, METH_VARARGS, "add(fd, ssrc, seq, ts) -> (leg, generation)"},
    {"remove", (PyCFunction)Engine_remove, METH_VARARGS, "remove(leg): before its socket is closed"},
    {"configure", (PyCFunction)Engine_configure, METH_VARARGS, "configure(leg, pt, te_pt or -1, codec index, inband, silence frame)"},
    {"set_remote", (PyCFunction)Engine_set_remote, METH_VARARGS, "set_remote(leg, host, port): send there until a packet latches"},
    {"remote", (PyCFunction)Engine_remote, METH_VARARGS, "remote(leg) -> ((host, port), latched) or None"},
    {"set_sending", (PyCFunction)Engine_set_sending, METH_VARARGS, "set_sending(leg, sending)"},
    {"record", (PyCFunction)Engine_record, METH_VARARGS, "record(leg, timeline or None): place the leg's audio on a Timeline"},
    {"play", (PyCFunction)Engine_play, METH_VARARGS, "play(leg, items, loop_items) -> play id; items are sequences of frames (bytes)"},
    {"stop_play", (PyCFunction)Engine_stop_play, METH_VARARGS, "stop_play(leg)"},
    {"playing", (PyCFunction)Engine_playing, METH_VARARGS, "playing(leg) -> bool"},
    {"bridge", (PyCFunction)Engine_bridge, METH_VARARGS, "bridge(a, b, table a->b or None, table b->a or None)"},
    {"unbridge", (PyCFunction)Engine_unbridge, METH_VARARGS, "unbridge(leg)"},
    {"stats", (PyCFunction)Engine_stats, METH_VARARGS, "stats(leg) -> counters, seq, ts, playout buffer late and overflow, read on the sub-tick"},
    {"rx_counts", (PyCFunction)Engine_rx_counts, METH_NOARGS, "{leg: packets received}"},
    {"drain", (PyCFunction)Engine_drain, METH_NOARGS, "drain() -> events"},
    {"clock", (PyCFunction)Engine_clock, METH_NOARGS, "the media clock's figures"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "media._engine.Engine",
    .tp_basicsize = sizeof(Engine),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The native RTP plane: one thread for every leg's socket and the media clock.",
    .tp_new = Engine_new,
    .tp_dealloc = (destructor)Engine_dealloc,
    .tp_methods = Engine_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "media._engine", "The native RTP plane of media.engine.", -1, NULL,
};

PyMODINIT_FUNC PyInit__engine(void) {
    if (PyType_Ready(&EngineType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (timeline_module_init(m) < 0 || analysis_module_init(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&EngineType);
    if (PyModule_AddObject(m, "Engine", (PyObject *)&EngineType) < 0) {
        Py_DECREF(&EngineType);
        Py_DECREF(m);
        return NULL;
    }
    PyModule_AddIntConstant(m, "EV_DTMF", EV_DTMF);
    PyModule_AddIntConstant(m, "EV_AUDIO", EV_AUDIO);
    PyModule_AddIntConstant(m, "EV_DONE", EV_DONE);
    PyModule_AddIntConstant(m, "PHASES", PHASES);
    return m;
}
