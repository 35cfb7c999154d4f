// `sev snp measure --explain EXPECTED`: the measured parts in order with their digests, and the
// variations of the given options that give EXPECTED (lib/snp/explain.ts), as text or JSON.
import type { MeasurementExplanation, MeasurementVariation } from '../snp/explain';
import type { MeasuredPart } from '../snp/measurement';

/** Parts with at most this many pages list every page in the text form (--json: always). */
const PAGES_LISTED = 16;

const hex = (n: number) => `0x${n.toString(16)}`;

function partTitle(p: MeasuredPart): string {
  const what = p.detail ? `${p.what}, ${p.detail}` : p.what;
  if (p.pages === undefined) return `${what}: ${p.size} bytes`;
  const count = p.pages.length;
  const range = p.what === 'VMSA' ? `at ${hex(p.gpa!)}` : `at ${hex(p.gpa!)}-${hex(p.gpa! + p.size - 1)}`;
  return `${what}: ${count} ${p.pageType} page${count === 1 ? '' : 's'} ${range}`;
}

/** How to compute a variation with `sev snp measure`. */
export function variationFlags(v: MeasurementVariation): string {
  if (!v.flags) return 'no sev snp measure flag computes it';
  const parts: string[] = [];
  for (let i = 0; i < v.flags.set.length; i += 2) parts.push(`${v.flags.set[i]} ${JSON.stringify(v.flags.set[i + 1]).replace(/^"([\w.:,=/+-]+)"$/, '$1')}`);
  if (v.flags.drop.length > 0) parts.push(`without ${v.flags.drop.join(', ')}`);
  return parts.join(' ');
}

export function formatExplanation(e: MeasurementExplanation): string {
  const t = e.trace;
  const lines: string[] = [];
  if (e.match) {
    lines.push(`✅ the computed ${t.mode} measurement is the expected one: ${t.digest.toString('hex')}`);
    return lines.join('\n');
  }
  lines.push(`❌ the computed ${t.mode} measurement is not the expected one`);
  lines.push(`   expected: ${e.expected.toString('hex')}`);
  lines.push(`   computed: ${t.digest.toString('hex')}`);
  lines.push('');
  lines.push(
    t.algorithm === 'sha384'
      ? 'Measured in this order (SNP: each page replaces the launch digest with SHA-384 of its PAGE_INFO;\n' +
        '"contents" is the SHA-384 of a normal or VMSA page, zeros for the other types):'
      : `Measured in this order (${t.mode === 'sev' ? 'SEV' : 'SEV-ES'}: the launch digest is SHA-256 over all parts in order;\n` +
        '"so far" is the SHA-256 of everything up to and including the part):',
  );
  t.parts.forEach((p, i) => {
    lines.push(`${String(i + 1).padStart(3)}. ${partTitle(p)}`);
    if (p.sha256) {
      lines.push(`       sha256   ${p.sha256.toString('hex')}`);
      lines.push(`       so far   ${p.digest.toString('hex')}`);
      return;
    }
    const pages = p.pages ?? [];
    const hashed = pages.some((g) => g.contents.some((b) => b !== 0));
    if (!hashed || pages.length > PAGES_LISTED) {
      // Pages whose contents the firmware does not hash differ only by GPA: the part's result is enough.
      if (hashed) lines.push(`       (${pages.length} pages: --json lists each page's contents and digest)`);
      lines.push(`       digest   ${p.digest.toString('hex')}`);
      return;
    }
    for (const page of pages) {
      if (pages.length > 1) lines.push(`       page ${hex(page.gpa)}`);
      lines.push(`       contents ${page.contents.toString('hex')}`);
      lines.push(`       digest   ${page.digest.toString('hex')}`);
    }
  });
  lines.push('');
  const tried = `${e.tried} variation${e.tried === 1 ? '' : 's'} of the given options${e.triedPairs ? ' (single changes, then pairs)' : ''}`;
  if (e.matches.length === 0) {
    lines.push(`None of ${tried} gives the expected measurement.`);
    lines.push('The difference is elsewhere: the OVMF build (for SNP the digest after the OVMF pages above is its');
    lines.push('OVMF hash, as sev-snp-measure --mode snp:ovmf-hash prints it), the kernel, initrd or command line');
    lines.push('bytes, the SVSM image or the variable store size; or the expected value is not this guest\'s.');
  } else {
    lines.push(`Tried ${tried}; ${e.matches.length === 1 ? 'this one gives' : `these ${e.matches.length} give`} the expected measurement:`);
    for (const m of e.matches) lines.push(`  ✅ ${m.description}\n       ${variationFlags(m)}`);
  }
  return lines.join('\n');
}

export function explanationToJSON(e: MeasurementExplanation, measurement: string): Record<string, unknown> {
  const t = e.trace;
  return {
    mode: t.mode,
    measurement,
    expected: e.expected.toString('hex'),
    match: e.match,
    algorithm: t.algorithm,
    parts: t.parts.map((p, i) => ({
      index: i + 1,
      what: p.what,
      ...(p.detail === undefined ? {} : { detail: p.detail }),
      ...(p.pageType === undefined ? {} : { page_type: p.pageType, gpa: hex(p.gpa!) }),
      size: p.size,
      ...(p.sha256 === undefined ? {} : { sha256: p.sha256.toString('hex') }),
      ...(p.pages === undefined ? {} : { pages: p.pages.map((g) => ({ type: g.type, gpa: hex(g.gpa), contents: g.contents.toString('hex'), digest: g.digest.toString('hex') })) }),
      digest: p.digest.toString('hex'),
    })),
    tried: e.tried,
    tried_pairs: e.triedPairs,
    matches: e.matches.map((m) => ({ causes: m.causes, description: m.description, flags: m.flags, command_line: variationFlags(m) })),
  };
}
