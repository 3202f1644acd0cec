/* The floor of rtcore's uncontended mutex and read-lock paths, modelled in C.
 *
 * Copies of the same lock/unlock pair, differing in how a call finds the
 * calling thread's id and held record, and in what it records:
 *
 *   table_*: rtcore's way on x86-64 Linux (src/lock/order.rs, `place`):
 *            the thread pointer (%fs:0) hashed into a fixed table of
 *            (thread pointer, record, id) slots. No call, no TLS
 *            descriptor, and it works in a dlopen'd library.
 *   bare_*:  the table, and nothing recorded or checked but the word, the
 *            magic and the self pointer: the shape of checking off.
 *   off_*:   checking off as rtcore must do it: bare_lock, and an unlock
 *            that, after its release, looks at the top of the record and,
 *            when the lock is not there, whether its rank is held (a lock
 *            taken while checking was on is forgotten even if checking
 *            was switched off since).
 *   ie_*:    an initial-exec TLS variable: one GOT load and one
 *            %fs-relative load. The fastest way there is, but a library
 *            using it needs room in the static TLS block, so dlopen of it
 *            fails once that room is used up (rtcore refuses that risk:
 *            docs/benchmarks.md, "Round six").
 *
 * Everything else is the least rtcore's checked path does: check that the
 * library runs, compare-and-swap the lock word to the owner's id, check the
 * lock's magic and self pointer, count the acquisition, check the rank
 * against the ranks held (one word) and record the lock (four words, the
 * rank word, the length); unlock: compare-and-swap the word back to 0 and
 * pop the record. The rw_* models do the same for a read lock (below).
 * Built as a shared library, called through the PLT, like rtcore's
 * exports. */
#include <stdint.h>
#include <stdlib.h>

struct floor_mutex {
	uint64_t word;
	uint64_t name, rank_name;
	uint32_t rank, magic;
	uint64_t self, count;
};

struct entry { uint64_t lock, site, key, word; };
struct record {
	uint64_t me, len, wide_from;
	uint64_t ranks_at[65];
	struct entry entries[64];
};

struct slot { uint64_t tp, rec, me, pad; };

/* Exported so that, as in rtcore, they are reached through the GOT. */
uint32_t floor_running = 1;
uint64_t floor_allowed[256][4]; /* ranks that may be held before rank r */
struct slot floor_slots[1024];

static __thread struct { uint64_t me, rec; } ie_self
	__attribute__((tls_model("initial-exec")));

static inline uint64_t thread_pointer(void)
{
	uint64_t tp;
	__asm__("mov %%fs:0, %0" : "=r"(tp));
	return tp;
}

static inline struct slot *slot_of(uint64_t tp)
{
	return &floor_slots[(tp * 0x9e3779b97f4a7c15ull) >> 54];
}

/* The calling thread's slot, as rtcore's fast paths find it. */
static inline struct slot *my_slot(void)
{
	uint64_t tp = thread_pointer();
	struct slot *s = slot_of(tp);
	if (s->tp != tp || !s->me)
		abort();
	return s;
}

/* Check m's rank against the ranks held and record m (its entry's kind
 * in `kind`); every checked model does the same. */
#define CHECK_AND_RECORD(r, kind)                                             \
	do {                                                                  \
		uint64_t len = (r)->len;                                      \
		if (len == 64)                                                \
			abort();                                              \
		uint64_t held = (r)->ranks_at[len], bit = 1ull << m->rank;    \
		if ((held & ~floor_allowed[m->rank][0]) | (held & bit))       \
			abort();                                              \
		(r)->ranks_at[len + 1] = held | bit;                          \
		(r)->entries[len] = (struct entry){                           \
			(uint64_t)m, 0, (uint64_t)m,                          \
			((uint64_t)m->rank | (kind)) << 32 };                 \
		(r)->len = len + 1;                                           \
	} while (0)

/* Pop m, which must be the newest entry. */
#define POP(r)                                                                \
	do {                                                                  \
		uint64_t len = (r)->len;                                      \
		if (len == 0 || (r)->entries[len - 1].lock != (uint64_t)m)    \
			abort();                                              \
		(r)->len = len - 1;                                           \
	} while (0)

#define LOCK_BODY(me, r)                                                      \
	if (floor_running != 1 || !m)                                         \
		abort();                                                      \
	uint64_t free_ = 0;                                                   \
	if (!__atomic_compare_exchange_n(&m->word, &free_, (me) << 2, 0,     \
					 __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) \
		abort();                                                      \
	if (m->magic != 1 || m->self != (uint64_t)m || m->rank > 63)          \
		abort();                                                      \
	m->count++;                                                           \
	CHECK_AND_RECORD(r, 0x10000);                                         \
	return 0;

#define UNLOCK_BODY(me, r)                                                    \
	if (floor_running != 1 || !m)                                         \
		abort();                                                      \
	uint64_t mine = (me) << 2;                                            \
	if (!__atomic_compare_exchange_n(&m->word, &mine, 0, 0,              \
					 __ATOMIC_RELEASE, __ATOMIC_RELAXED)) \
		abort();                                                      \
	POP(r);                                                               \
	return 0;

int table_lock(struct floor_mutex *m)
{
	struct slot *s = my_slot();
	struct record *r = (struct record *)s->rec;
	LOCK_BODY(s->me, r)
}

int table_unlock(struct floor_mutex *m)
{
	struct slot *s = my_slot();
	struct record *r = (struct record *)s->rec;
	UNLOCK_BODY(s->me, r)
}

int bare_lock(struct floor_mutex *m)
{
	struct slot *s = my_slot();
	if (floor_running != 1 || !m)
		abort();
	uint64_t free_ = 0;
	if (!__atomic_compare_exchange_n(&m->word, &free_, s->me << 2, 0,
					 __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
		abort();
	if (m->magic != 1 || m->self != (uint64_t)m)
		abort();
	m->count++;
	return 0;
}

int bare_unlock(struct floor_mutex *m)
{
	struct slot *s = my_slot();
	if (floor_running != 1 || !m)
		abort();
	uint64_t mine = s->me << 2;
	if (!__atomic_compare_exchange_n(&m->word, &mine, 0, 0,
					 __ATOMIC_RELEASE, __ATOMIC_RELAXED))
		abort();
	return 0;
}

int ie_lock(struct floor_mutex *m)
{
	uint64_t me = ie_self.me;
	struct record *r = (struct record *)ie_self.rec;
	if (!me)
		abort();
	LOCK_BODY(me, r)
}

int ie_unlock(struct floor_mutex *m)
{
	uint64_t me = ie_self.me;
	struct record *r = (struct record *)ie_self.rec;
	if (!me)
		abort();
	UNLOCK_BODY(me, r)
}

int off_unlock(struct floor_mutex *m)
{
	struct slot *s = my_slot();
	struct record *r = (struct record *)s->rec;
	if (floor_running != 1 || !m)
		abort();
	uint32_t rank = m->rank;
	uint64_t mine = s->me << 2;
	if (!__atomic_compare_exchange_n(&m->word, &mine, 0, 0,
					 __ATOMIC_RELEASE, __ATOMIC_RELAXED))
		abort();
	uint64_t len = r->len;
	if (len != 0 && r->entries[len - 1].lock == (uint64_t)m) {
		r->len = len - 1;
		return 0;
	}
	/* Not on top: recorded further down only if its rank is held (rtcore
	 * then removes the entry out of line; never here). */
	if (rank > 63 || (r->ranks_at[len] >> rank) & 1)
		abort();
	return 0;
}

/* The read side of a reader/writer lock, reduced to its least as above:
 * the word holds a reader count above 4 flag bits (rtcore's layout, less
 * its reader bias); a read lock loads the word, refuses a writer or a
 * waiting writer, adds a reader by compare-and-swap (as rtcore's fast
 * path and glibc's rdlock do), checks the lock's fields, counts the
 * acquisition and, checked, records the lock in read mode; the unlock pops
 * the record and removes the reader with one fetch-and-sub, whose old
 * value it tests (no writer, a reader in) and which tells whether a writer
 * must be woken. */
#define RW_WRITER 4ull
#define RW_WPARKED 2ull
#define RW_ONE 16ull

#define RDLOCK_BODY(r, checked)                                               \
	if (floor_running != 1 || !m)                                         \
		abort();                                                      \
	uint64_t w = __atomic_load_n(&m->word, __ATOMIC_RELAXED);             \
	if ((w & (RW_WRITER | RW_WPARKED)) ||                                 \
	    !__atomic_compare_exchange_n(&m->word, &w, w + RW_ONE, 0,        \
					 __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) \
		abort();                                                      \
	if (m->magic != 1 || m->self != (uint64_t)m || m->rank > 63)          \
		abort();                                                      \
	m->count++;                                                           \
	if (checked)                                                          \
		CHECK_AND_RECORD(r, 0x20000);                                 \
	return 0;

#define RDUNLOCK_BODY(r, checked)                                             \
	if (floor_running != 1 || !m)                                         \
		abort();                                                      \
	if (checked)                                                          \
		POP(r);                                                       \
	uint64_t old = __atomic_fetch_sub(&m->word, RW_ONE, __ATOMIC_RELEASE); \
	if ((old & RW_WRITER) || old < RW_ONE ||                              \
	    ((old & RW_WPARKED) && old < 2 * RW_ONE))                         \
		abort();                                                      \
	return 0;

int rw_table_rdlock(struct floor_mutex *m)
{
	struct slot *s = my_slot();
	struct record *r = (struct record *)s->rec;
	RDLOCK_BODY(r, 1)
}

int rw_table_rdunlock(struct floor_mutex *m)
{
	struct slot *s = my_slot();
	struct record *r = (struct record *)s->rec;
	RDUNLOCK_BODY(r, 1)
}

int rw_ie_rdlock(struct floor_mutex *m)
{
	struct record *r = (struct record *)ie_self.rec;
	if (!ie_self.me)
		abort();
	RDLOCK_BODY(r, 1)
}

int rw_ie_rdunlock(struct floor_mutex *m)
{
	struct record *r = (struct record *)ie_self.rec;
	if (!ie_self.me)
		abort();
	RDUNLOCK_BODY(r, 1)
}

/* Nothing recorded; the table still looked up (rtcore needs the record
 * to know whether this thread holds the lock already). */
int rw_bare_rdlock(struct floor_mutex *m)
{
	struct record *r = (struct record *)my_slot()->rec;
	(void)r;
	RDLOCK_BODY(r, 0)
}

int rw_bare_rdunlock(struct floor_mutex *m)
{
	struct record *r = (struct record *)my_slot()->rec;
	(void)r;
	RDUNLOCK_BODY(r, 0)
}

/* Register the calling thread (both ways) with `rec` as its record. */
void floor_register(struct record *rec, uint64_t me)
{
	uint64_t tp = thread_pointer();
	struct slot *s = slot_of(tp);
	s->rec = (uint64_t)rec;
	s->me = me;
	s->tp = tp;
	ie_self.me = me;
	ie_self.rec = (uint64_t)rec;
	for (int r = 0; r < 256; r++)
		floor_allowed[r][0] = r < 64 ? (1ull << r) - 1 : ~0ull;
}
