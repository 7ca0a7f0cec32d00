/* The store's on-disk encodings: segment headers, record headers and the
 * checksums. Pure functions, little-endian on every host.
 *
 * Segment file <id>.seg: a 48-byte header, then records back to back, and
 * once sealed a seal record last.
 *
 *   segment header   0 u64 magic "RMQBSEG1"   8 u32 version (1)
 *                   12 u32 kind (bit 0 fill stream, bit 1 compacted)
 *                   16 u64 segment id        24 u64 salt (random)
 *                   32 u64 zero              40 u64 XXH3-64 of bytes 0..39
 *
 *   record header    0 u32 magic "REC1"       4 u16 type (1 body, 2 seal)
 *                    6 u16 id_len             8 u64 key
 *                   16 u64 data hash: XXH3-64 of le32(id_len) || id || body
 *                   24 u32 body_len
 *                   28 u32 header hash: fold32(XXH3-64 of bytes 0..27,
 *                      seeded with the segment's salt)
 *   then id_len bytes of id and body_len bytes of body.
 *
 * The header hash is seeded with a random per-segment salt so that a body
 * holding the image of a record (a client can publish any bytes) never
 * passes for a record when a scan looks for the next good record after a
 * bad one. The data hash is not salted: its fold is the replicated sum.
 *
 * A seal record has key 0, no id, and a 16-byte body: u64 number of body
 * records, u64 its own offset. The index file format is in store_seg.c. */
#include <string.h>

#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "store_int.h"

void store__put_le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++) {
		p[i] = (unsigned char)(v >> (8 * i));
	}
}

void store__put_le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++) {
		p[i] = (unsigned char)(v >> (8 * i));
	}
}

uint32_t store__get_le32(const unsigned char *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--) {
		v = (v << 8) | p[i];
	}
	return v;
}

uint64_t store__get_le64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--) {
		v = (v << 8) | p[i];
	}
	return v;
}

uint32_t store__fold32(uint64_t h)
{
	return (uint32_t)(h >> 32) ^ (uint32_t)h;
}

uint64_t store__data_hash(const void *id, size_t id_len, const void *body,
			  size_t len)
{
	XXH3_state_t st;
	unsigned char pre[4];

	store__put_le32(pre, (uint32_t)id_len);
	XXH3_INITSTATE(&st);
	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, pre, sizeof pre);
	if (id_len > 0) {
		XXH3_64bits_update(&st, id, id_len);
	}
	if (len > 0) {
		XXH3_64bits_update(&st, body, len);
	}
	return XXH3_64bits_digest(&st);
}

uint32_t store_sum(const void *id, size_t id_len, const void *body, size_t len)
{
	return store__fold32(store__data_hash(id, id_len, body, len));
}

void store__seg_hdr_encode(unsigned char out[STORE__SEG_HDR],
			   const struct store__seg_hdr *h)
{
	memset(out, 0, STORE__SEG_HDR);
	store__put_le64(out, STORE__SEG_MAGIC);
	store__put_le32(out + 8, STORE__VERSION);
	store__put_le32(out + 12, h->kind);
	store__put_le64(out + 16, h->id);
	store__put_le64(out + 24, h->salt);
	store__put_le64(out + 40, XXH3_64bits(out, 40));
}

bool store__seg_hdr_decode(const unsigned char in[STORE__SEG_HDR],
			   struct store__seg_hdr *h)
{
	if (store__get_le64(in) != STORE__SEG_MAGIC ||
	    store__get_le64(in + 40) != XXH3_64bits(in, 40) ||
	    store__get_le32(in + 8) != STORE__VERSION) {
		return false;
	}
	h->kind = store__get_le32(in + 12);
	h->id = store__get_le64(in + 16);
	h->salt = store__get_le64(in + 24);
	return (h->kind & ~(uint32_t)STORE__KIND_ALL) == 0;
}

void store__rec_hdr_encode(unsigned char out[STORE__REC_HDR],
			   const struct store__rec_hdr *h, uint64_t salt)
{
	store__put_le32(out, STORE__REC_MAGIC);
	out[4] = (unsigned char)h->type;
	out[5] = (unsigned char)(h->type >> 8);
	out[6] = (unsigned char)h->id_len;
	out[7] = (unsigned char)(h->id_len >> 8);
	store__put_le64(out + 8, h->key);
	store__put_le64(out + 16, h->data_hash);
	store__put_le32(out + 24, h->body_len);
	store__put_le32(out + 28,
			store__fold32(XXH3_64bits_withSeed(out, 28, salt)));
}

bool store__rec_hdr_decode(const unsigned char in[STORE__REC_HDR],
			   uint64_t salt, struct store__rec_hdr *h)
{
	if (store__get_le32(in) != STORE__REC_MAGIC ||
	    store__get_le32(in + 28) !=
		    store__fold32(XXH3_64bits_withSeed(in, 28, salt))) {
		return false;
	}
	h->type = (uint32_t)in[4] | (uint32_t)in[5] << 8;
	h->id_len = (uint32_t)in[6] | (uint32_t)in[7] << 8;
	h->key = store__get_le64(in + 8);
	h->data_hash = store__get_le64(in + 16);
	h->body_len = store__get_le32(in + 24);
	if (h->type == STORE__REC_BODY) {
		return h->body_len <= STORE_MAX_BODY;
	}
	return h->type == STORE__REC_SEAL && h->id_len == 0 &&
	       h->body_len == STORE__SEAL_BODY;
}
