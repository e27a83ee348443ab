/**
 * A small parser of the Prometheus text exposition format (version 0.0.4): every line must be
 * blank, a comment (`# HELP`, `# TYPE` and `# UNIT` ones well formed), or a sample
 * `name{labels} value [timestamp]`; anything else throws, naming the line.
 */

/** One sample. */
export interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

/** The parsed exposition: the samples, and each metric family's declared type. */
export interface Exposition {
  readonly samples: ReadonlyArray<Sample>
  readonly types: Readonly<Record<string, string>>
}

const NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*"
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(.*)\\})?\\s+(\\S+)(?:\\s+(-?\\d+))?$`)
const LABEL = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)/y
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"])

const parseValue = (raw: string, line: string): number => {
  if (raw === "+Inf") return Number.POSITIVE_INFINITY
  if (raw === "-Inf") return Number.NEGATIVE_INFINITY
  if (raw === "NaN") return Number.NaN
  const value = Number(raw)
  if (raw.trim() === "" || Number.isNaN(value)) throw new Error(`bad sample value in: ${line}`)
  return value
}

const parseLabels = (raw: string | undefined, line: string): Record<string, string> => {
  const labels: Record<string, string> = {}
  if (raw === undefined || raw === "") return labels
  LABEL.lastIndex = 0
  while (LABEL.lastIndex < raw.length) {
    const match = LABEL.exec(raw)
    if (match === null) throw new Error(`bad labels in: ${line}`)
    labels[match[1]!] = match[2]!.replace(/\\n/g, "\n").replace(/\\"/g, '"').replace(/\\\\/g, "\\")
  }
  return labels
}

/** Parses `text`, throwing on the first line that is not valid Prometheus text. */
export const parsePrometheus = (text: string): Exposition => {
  const samples: Array<Sample> = []
  const types: Record<string, string> = {}
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue
    if (line.startsWith("#")) {
      // Other comments are allowed; HELP, TYPE and UNIT lines must be well formed.
      if (!/^#\s*(HELP|TYPE|UNIT)(\s|$)/.test(line)) continue
      const comment = new RegExp(`^# (HELP|TYPE|UNIT) (${NAME})(?: (.*))?$`).exec(line)
      if (comment === null) throw new Error(`bad comment: ${line}`)
      if (comment[1] === "TYPE") {
        if (!TYPES.has(comment[3] ?? "")) throw new Error(`bad type: ${line}`)
        types[comment[2]!] = comment[3]!
      }
      continue
    }
    const match = SAMPLE.exec(line)
    if (match === null) throw new Error(`bad sample: ${line}`)
    samples.push({ name: match[1]!, labels: parseLabels(match[2], line), value: parseValue(match[3]!, line) })
  }
  return { samples, types }
}

/** The value of the one sample named `name` whose labels include `labels` (undefined if none). */
export const sampleValue = (
  exposition: Exposition,
  name: string,
  labels: Readonly<Record<string, string>>
): number | undefined => {
  const found = exposition.samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)
  )
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`)
  return found[0]?.value
}
