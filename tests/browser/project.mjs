// A git project for the fixture agent review-work.sh to work in (evidence.test.mjs and
// screenshot.mjs): its worktree mode gives the item a real diff.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const AGENT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/agents/review-work.sh');

/** A repository on `main` whose README says "the project", for the agent's worktrees. */
export function projectRepo(dir) {
  const repo = path.join(dir, 'project');
  mkdirSync(repo, { recursive: true });
  const git = (...args) => execFileSync('git', ['-C', repo, ...args], { stdio: 'pipe' });
  git('init', '-q', '-b', 'main');
  git('config', 'user.name', 'test');
  git('config', 'user.email', 'test@example.invalid');
  writeFileSync(path.join(repo, 'README'), 'the project\n');
  git('add', 'README');
  git('commit', '-q', '-m', 'start');
  return repo;
}

/** The [pool], [workspace] and [agent] tables for review-work.sh in git worktree mode. */
export function reviewWorkConfig(repo, size = 1) {
  return (
    `[pool]\nsize = ${size}\nmax_attempts = 1\n` +
    `[workspace]\ngit_repo = ${JSON.stringify(repo)}\n` +
    `[agent]\npreset = "lines"\ncommand = ${JSON.stringify(['/bin/sh', AGENT])}\n`
  );
}
