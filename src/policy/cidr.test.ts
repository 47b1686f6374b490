import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { cidrContains, cidrOverlaps, CidrError, formatCidr, normalizeCidr, parseCidr } from './cidr.js';

test('IPv4 CIDRs', () => {
  assert.equal(normalizeCidr('198.18.0.0/15'), '198.18.0.0/15');
  assert.equal(normalizeCidr('198.18.3.4'), '198.18.3.4/32', 'a bare address is a host prefix');
  assert.equal(normalizeCidr(' 0.0.0.0/0 '), '0.0.0.0/0');
  const c = parseCidr('198.18.1.0/24');
  assert.deepEqual([c.family, [...c.addr], c.prefix], [4, [198, 18, 1, 0], 24]);
});

test('IPv6 CIDRs in every spelling normalise to RFC 5952 text', () => {
  assert.equal(normalizeCidr('2001:2::/48'), '2001:2::/48');
  assert.equal(normalizeCidr('2001:0002:0000:0000:0000:0000:0000:0000/48'), '2001:2::/48');
  assert.equal(normalizeCidr('2001:2:0:0:0:0:0:1'), '2001:2::1/128');
  assert.equal(normalizeCidr('::/0'), '::/0');
  assert.equal(normalizeCidr('::1'), '::1/128');
  assert.equal(normalizeCidr('2001:2:0:1:0:0:0:0/64'), '2001:2:0:1::/64');
  assert.equal(normalizeCidr('2001:2:0:0:1:0:0:0/80'), '2001:2:0:0:1::/80', 'the longest zero run is compressed');
  assert.equal(normalizeCidr('2001:0:0:1:0:0:1:1'), '2001::1:0:0:1:1/128', 'the first of two equal zero runs is compressed');
  assert.equal(normalizeCidr('2001:2:0:1:1:1:1:1'), '2001:2:0:1:1:1:1:1/128', 'a single zero group is not compressed');
  assert.equal(normalizeCidr('2001:DB8::/32'), '2001:db8::/32', 'lowercase');
  assert.equal(normalizeCidr('64:ff9b::198.18.0.1'), '64:ff9b::c612:1/128', 'embedded IPv4 in the last 32 bits');
});

test('IPv4-mapped IPv6 prefixes become IPv4: the datapath sees those packets as IPv4', () => {
  assert.equal(normalizeCidr('::ffff:198.18.0.0/112'), '198.18.0.0/16');
  assert.equal(normalizeCidr('::ffff:198.18.0.1'), '198.18.0.1/32');
  assert.equal(normalizeCidr('::ffff:c612:0/120'), '198.18.0.0/24');
  assert.equal(normalizeCidr('::ffff:0:0/96'), '0.0.0.0/0');
  assert.equal(parseCidr('::fffe:0:0/96').family, 6, 'only ::ffff:0:0/96 is the mapped range');
});

test('host bits set: the error suggests the network', () => {
  assert.throws(() => parseCidr('198.18.1.7/24'), (e: unknown) => e instanceof CidrError && e.suggestion === '198.18.1.0/24' && /did you mean 198\.18\.1\.0\/24\?/.test(e.message));
  assert.throws(() => parseCidr('2001:2::1/48'), (e: unknown) => e instanceof CidrError && e.suggestion === '2001:2::/48');
  assert.throws(() => parseCidr('198.19.255.255/15'), /did you mean 198\.18\.0\.0\/15\?/);
});

test('malformed addresses and prefixes are refused', () => {
  for (const bad of [
    '', '198.18.0/24', '198.18.0.0.0/24', '198.18.0.256', '198.018.0.0/24', '198.18.0.0/33', '198.18.0.0/', '198.18.0.0/024',
    '198.18.0.0/-1', '2001:2::/129', '2001:2:::/48', '2001::2::1', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7::8', 'g::1', '12345::',
    'fe80::1%eth0', '::ffff:198.18.0', 'localhost', '1.2.3.4/24/8',
    '1..2.3', '.1.2.3', '1.2.3.', '00.1.2.3', '1.2.3.00', '1.2.3.4 5', '+1.2.3.4', '1.2.3.-4', '1.2.3.0x1', '１.2.3.4', '1.2.3.1000', '1.2.3.4.',
  ]) {
    assert.throws(() => parseCidr(bad), CidrError, bad);
  }
});

test('containment and overlap', () => {
  const a = parseCidr('198.18.0.0/15');
  const b = parseCidr('198.19.4.0/24');
  const c = parseCidr('198.20.0.0/16');
  assert.ok(cidrContains(a, b));
  assert.ok(!cidrContains(b, a));
  assert.ok(cidrOverlaps(b, a));
  assert.ok(!cidrOverlaps(a, c));
  assert.ok(!cidrOverlaps(a, parseCidr('2001:2::/48')));
});

const v4Cidr = fc.tuple(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.integer({ min: 0, max: 32 }));
const v6Cidr = fc.tuple(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.integer({ min: 0, max: 128 }));
function masked(bytes: Uint8Array, prefix: number): Buffer {
  const b = Buffer.from(bytes);
  for (let i = 0; i < b.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - 8 * i));
    b[i] &= (0xff << (8 - bits)) & 0xff;
  }
  return b;
}

test('property: any valid IPv4 CIDR round-trips through its canonical text', () => {
  fc.assert(
    fc.property(v4Cidr, ([bytes, prefix]) => {
      const addr = masked(bytes, prefix);
      const text = formatCidr({ family: 4, addr, prefix });
      const back = parseCidr(text);
      return back.family === 4 && back.prefix === prefix && back.addr.equals(addr) && formatCidr(back) === text;
    }),
    { numRuns: 2000 },
  );
});

test('property: any valid IPv6 CIDR round-trips (mapped ones come back as IPv4)', () => {
  fc.assert(
    fc.property(v6Cidr, fc.boolean(), ([bytes, prefix], mapped) => {
      const addr = masked(bytes, prefix);
      if (mapped && prefix >= 96) Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]).copy(addr);
      const isMapped = prefix >= 96 && addr.subarray(0, 12).equals(Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]));
      const text = formatCidr({ family: 6, addr, prefix });
      const back = parseCidr(text);
      if (isMapped) return back.family === 4 && back.prefix === prefix - 96 && back.addr.equals(addr.subarray(12));
      // The fully expanded spelling parses to the same prefix.
      const long = `${Array.from({ length: 8 }, (_, i) => addr.readUInt16BE(2 * i).toString(16).padStart(4, '0')).join(':')}/${prefix}`;
      return back.family === 6 && back.prefix === prefix && back.addr.equals(addr) && formatCidr(back) === text && normalizeCidr(long) === text;
    }),
    { numRuns: 2000 },
  );
});

test('property: an address with any host bit set is refused with the masked network suggested', () => {
  fc.assert(
    fc.property(v4Cidr, ([bytes, prefix]) => {
      const addr = Buffer.from(bytes);
      const net = masked(bytes, prefix);
      const text = `${[...addr].join('.')}/${prefix}`;
      if (addr.equals(net)) return normalizeCidr(text) === text;
      try {
        parseCidr(text);
        return false;
      } catch (e) {
        return e instanceof CidrError && e.suggestion === `${[...net].join('.')}/${prefix}`;
      }
    }),
    { numRuns: 2000 },
  );
});
