/** FNV-1a of a string, as an unsigned 32-bit integer (spreads keys over stripes and shards). */
export const fnv1a = (key: string): number => {
  let h = 0x811c9dc5
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619)
  return h >>> 0
}
