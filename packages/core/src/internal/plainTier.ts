/**
 * A tier as an object of its own fields, which the cache's wrappers (spans.ts, recovery.ts's
 * gate, the breaker's guard) and Tier.withInputChecks (tierInput.ts) copy by spreading it: a tier written as a class keeps its methods
 * on its prototype, where a spread does not reach, and they use `this`.
 */
import type { Tier } from "../Tier.js"

/**
 * `tier` with every member of `Tier.Service` as an own field, its methods bound to it. A plain
 * object (the tiers of the packages) is answered as it is, with its other fields (a memory
 * tier's fast path) kept.
 */
export const plainTier = (tier: Tier.Service): Tier.Service => {
  const proto: unknown = Object.getPrototypeOf(tier)
  if (proto === Object.prototype || proto === null) return tier
  const { callTimeout, system, ready, sequence } = tier
  return {
    name: tier.name,
    get: (key) => tier.get(key),
    getMany: (keys) => tier.getMany(keys),
    set: (key, entry) => tier.set(key, entry),
    setMany: (entries) => tier.setMany(entries),
    remove: (keys) => tier.remove(keys),
    removeMatching: (glob) => tier.removeMatching(glob),
    clear: tier.clear,
    health: tier.health,
    ...(callTimeout === undefined ? {} : { callTimeout }),
    ...(system === undefined ? {} : { system }),
    ...(ready === undefined ? {} : { ready }),
    ...(sequence === undefined ? {} : { sequence }),
    ...(tier.writeIfNewer === undefined ? {} : { writeIfNewer: (changes) => tier.writeIfNewer!(changes) }),
    ...(tier.setThen === undefined ? {} : { setThen: (key, entry, then) => tier.setThen!(key, entry, then) }),
    ...(tier.removeThen === undefined ? {} : { removeThen: (keys, then) => tier.removeThen!(keys, then) }),
    ...(tier.setNow === undefined ? {} : { setNow: (key, entry, done) => tier.setNow!(key, entry, done) }),
    ...(tier.removeNow === undefined ? {} : { removeNow: (keys, done) => tier.removeNow!(keys, done) })
  }
}
