import { createHash, timingSafeEqual } from 'node:crypto';

/** Constant-time check of `Authorization: Bearer <token>` (both sides hashed: equal lengths). */
export function bearerMatches(authorization: string | string[] | undefined, token: string): boolean {
  const value = Array.isArray(authorization) ? authorization[0] : authorization;
  const match = /^Bearer (.+)$/i.exec(value ?? '');
  const given = createHash('sha256').update(match ? match[1].trim() : '\u0000no token').digest();
  const expected = createHash('sha256').update(token).digest();
  return timingSafeEqual(given, expected) && match !== null;
}
