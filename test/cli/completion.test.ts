// Why: a completion script that does not parse breaks the user's shell start,
// and one written by hand drifts from the CLI. The scripts are generated from
// the commander program; these run them in the real bash (and zsh when
// installed) and ask them what they offer after each of a few command lines.
import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runCli } from '../helpers/cli.js'

/** The script `mesh-proxy completion <shell>` prints, in a file. */
async function script (t: Test, shell: string): Promise<string> {
  const r = await runCli(['completion', shell])
  t.equal(r.code, 0, `completion ${shell}: exit 0`)
  const dir = await mkdtemp(join(tmpdir(), 'mesh-proxy-completion-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, `mesh-proxy.${shell}`)
  await writeFile(file, r.out + '\n')
  return file
}

/** `shell -c code` with the script sourced first: its stdout, or a failed assertion with its stderr. */
function inShell (t: Test, shell: string, code: string): string {
  const r = spawnSync(shell, ['-c', code], { encoding: 'utf8' })
  t.equal(r.status, 0, `${shell} ran it${r.stderr === '' ? '' : ': ' + r.stderr}`)
  return r.stdout
}

const has = (cmd: string): boolean => spawnSync(cmd, ['-c', 'true']).status === 0

/** Command line (the last word is the one being completed) -> words that must be offered, and ones that must not. */
const CASES: Array<[string[], string[], string[]]> = [
  [['mesh-proxy', ''], ['run', 'ca', 'cert', 'intention', 'completion', 'version'], ['--listen']],
  [['mesh-proxy', 'run', '--li'], ['--listen'], ['--service']],
  [['mesh-proxy', 'run', '--'], ['--service', '--upstream', '--mesh-dir', '--admin', '--help'], ['--allow']],
  [['mesh-proxy', 'run', '--service', 'ca', '--up'], ['--upstream'], []], // a flag's value is not a command
  [['mesh-proxy', 'ca', ''], ['init', 'rotate', 'retire-old', 'bundle'], ['run']],
  [['mesh-proxy', 'ca', 'bundle', '--format', ''], ['spiffe', 'pem'], []],
  [['mesh-proxy', 'intention', 'create', '--'], ['--allow', '--deny', '--replace', '--mesh-dir'], ['--listen']],
  [['mesh-proxy', 'completion', ''], ['bash', 'zsh'], []]
]

t.test('bash: parses, and offers commands, subcommands, flags and choices', { skip: has('bash') ? false : 'no bash on this machine' }, async t => {
  const file = await script(t, 'bash')
  inShell(t, 'bash', `bash -n ${file}`)
  for (const [words, want, not] of CASES) {
    const arr = words.map(w => `'${w}'`).join(' ')
    const got = inShell(t, 'bash', `source ${file}; COMP_WORDS=(${arr}); COMP_CWORD=${words.length - 1}; _mesh_proxy; printf '%s\\n' "\${COMPREPLY[@]}"`).split('\n')
    for (const w of want) t.ok(got.includes(w), `${words.join(' ')}<TAB> offers ${w}`)
    for (const w of not) t.notOk(got.includes(w), `${words.join(' ')}<TAB> does not offer ${w}`)
  }
  const registered = inShell(t, 'bash', `source ${file}; complete -p mesh-proxy`)
  t.match(registered, /-F _mesh_proxy mesh-proxy/, 'registered for mesh-proxy')
})

t.test('zsh: parses, and offers the same', { skip: has('zsh') ? false : 'zsh is not installed (apt-get install zsh): only the bash script was checked' }, async t => {
  const file = await script(t, 'zsh')
  inShell(t, 'zsh', `zsh -n ${file}`)
  // The completion system's entry points, stubbed to print what they are given.
  const stubs = 'compdef () { }; _describe () { local -a a; a=("${(@P)${4}}"); print -rl -- ${a%%:*} }; compadd () { shift; print -rl -- "$@" }; _files () { print -r -- __files }; _message () { }'
  for (const [words, want, not] of CASES) {
    const arr = words.map(w => `'${w}'`).join(' ')
    // _describe filters by the prefix itself: the stub does not, so only "offers" is checked for flags.
    const got = inShell(t, 'zsh', `${stubs}; source ${file}; words=(${arr}); CURRENT=${words.length}; _mesh-proxy`).split('\n')
    for (const w of want) t.ok(got.includes(w), `${words.join(' ')}<TAB> offers ${w}`)
    if (!words.at(-1)!.startsWith('-')) for (const w of not) t.notOk(got.includes(w), `${words.join(' ')}<TAB> does not offer ${w}`)
  }
  t.equal(inShell(t, 'zsh', `${stubs}; source ${file}; words=(mesh-proxy cert inspect x); CURRENT=4; _mesh-proxy`), '__files\n', 'cert inspect <file>: files')
})

t.test('completion of an unknown shell: a usage error', async t => {
  const r = await runCli(['completion', 'fish'])
  t.equal(r.code, 2)
  t.match(r.err, /'fish' is invalid for argument 'shell'\.\s+Allowed choices are bash, zsh/)
})
