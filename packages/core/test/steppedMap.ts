import { Effect } from "effect"
import * as LateUpdates from "../src/internal/lateUpdates.js"

/**
 * A Map that counts its steps as V8's ordered hash table takes them, since a Map does not report
 * its own: each get, set, has or delete is one; a deleted entry stays in place as a hole until the
 * table is rebuilt (when an insertion finds it full), and every walk from the start passes the
 * holes before the first entry, a step each, as it passes each entry. So asking a Map for its
 * first entry anew after each deletion of the oldest costs the square of the deletions (e090459),
 * where one walk costs their number. A fresh walk's leading holes are counted, not walked, so that
 * the count stays cheap to take when it is large.
 */
export class SteppedMap<V> implements Map<string, V> {
  private slots: Array<{ readonly key: string; value: V } | undefined> = []
  private readonly index = new Map<string, number>()
  private capacity = 4
  /** No live slot before this one. */
  private firstLive = 0

  constructor(private readonly counter: { steps: number }) {}

  get size(): number {
    return this.index.size
  }
  get [Symbol.toStringTag](): string {
    return "SteppedMap"
  }
  get(key: string): V | undefined {
    this.counter.steps++
    const at = this.index.get(key)
    return at === undefined ? undefined : this.slots[at]!.value
  }
  has(key: string): boolean {
    this.counter.steps++
    return this.index.has(key)
  }
  set(key: string, value: V): this {
    this.counter.steps++
    const at = this.index.get(key)
    if (at !== undefined) {
      this.slots[at]!.value = value
      return this
    }
    if (this.slots.length >= this.capacity) this.rebuild()
    this.index.set(key, this.slots.length)
    this.slots.push({ key, value })
    return this
  }
  delete(key: string): boolean {
    this.counter.steps++
    const at = this.index.get(key)
    if (at === undefined) return false
    this.index.delete(key)
    this.slots[at] = undefined
    return true
  }
  clear(): void {
    this.counter.steps++
    this.slots = []
    this.index.clear()
    this.firstLive = 0
  }
  *entries(): MapIterator<[string, V]> {
    while (this.firstLive < this.slots.length && this.slots[this.firstLive] === undefined) this.firstLive++
    this.counter.steps += this.firstLive
    for (let i = this.firstLive; i < this.slots.length; i++) {
      this.counter.steps++
      const slot = this.slots[i]
      if (slot !== undefined) yield [slot.key, slot.value]
    }
  }
  [Symbol.iterator](): MapIterator<[string, V]> {
    return this.entries()
  }
  *keys(): MapIterator<string> {
    for (const [key] of this.entries()) yield key
  }
  *values(): MapIterator<V> {
    for (const [, value] of this.entries()) yield value
  }
  forEach(f: (value: V, key: string, map: Map<string, V>) => void): void {
    for (const [key, value] of this.entries()) f(value, key, this)
  }

  /** Drops the holes (a step per slot), growing the table when it is at least half full. */
  private rebuild(): void {
    this.counter.steps += this.slots.length
    if (this.index.size >= this.capacity / 2) this.capacity *= 2
    this.slots = this.slots.filter((slot) => slot !== undefined)
    for (let at = 0; at < this.slots.length; at++) this.index.set(this.slots[at]!.key, at)
    this.firstLive = 0
  }
}

/**
 * Within the scope, the caches built make their removal maps (lateUpdates.ts) as SteppedMaps
 * counting into the returned counter.
 */
export const steppedLateUpdates = Effect.acquireRelease(
  Effect.sync(() => {
    const counter = { steps: 0 }
    const previous = LateUpdates.maps.make
    LateUpdates.maps.make = <V>() => new SteppedMap<V>(counter)
    return { counter, previous }
  }),
  ({ previous }) =>
    Effect.sync(() => {
      LateUpdates.maps.make = previous
    })
).pipe(Effect.map(({ counter }) => counter))
