// The package's entry (src/index.ts) exports every type its public signatures use: a user can
// name what a method takes or returns. Walks the exported classes, interfaces and functions with
// the TypeScript checker, following public members only.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import ts from 'typescript';
import { repoRoot } from './helpers/repo.js';

test('every type used by an exported signature is itself exported', () => {
  const entry = join(repoRoot, 'src/index.ts');
  const program = ts.createProgram([entry], {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    strict: true,
    noEmit: true,
  });
  const checker = program.getTypeChecker();
  const unalias = (s: ts.Symbol): ts.Symbol =>
    s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s;
  const module = checker.getSymbolAtLocation(program.getSourceFile(entry)!)!;
  const exported = new Set(checker.getExportsOfModule(module).map(unalias));
  const ours = (d: ts.Declaration): boolean =>
    d.getSourceFile().fileName.startsWith(join(repoRoot, 'src'));
  const missing = new Set<string>();
  const visited = new Set<ts.Symbol>();

  const isPublic = (member: ts.Node): boolean => {
    const flags = ts.getCombinedModifierFlags(member as ts.Declaration);
    const name = (member as ts.NamedDeclaration).name;
    return (
      !(flags & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected)) &&
      !(name && ts.isPrivateIdentifier(name))
    );
  };
  const visitType = (node: ts.Node, from: string): void => {
    if (ts.isTypeReferenceNode(node) || ts.isExpressionWithTypeArguments(node)) {
      const at = ts.isTypeReferenceNode(node) ? node.typeName : node.expression;
      const found = checker.getSymbolAtLocation(at);
      const symbol = found && unalias(found);
      const declaration = symbol?.declarations?.[0];
      if (
        symbol &&
        declaration &&
        ours(declaration) &&
        !(symbol.flags & ts.SymbolFlags.TypeParameter)
      ) {
        if (!exported.has(symbol)) missing.add(`${symbol.name} (used by ${from})`);
        visitSymbol(symbol);
      }
    }
    ts.forEachChild(node, (child) => visitType(child, from));
  };
  const visitSymbol = (symbol: ts.Symbol): void => {
    if (visited.has(symbol)) return;
    visited.add(symbol);
    for (const declaration of symbol.declarations ?? []) {
      if (ts.isClassDeclaration(declaration) || ts.isInterfaceDeclaration(declaration)) {
        for (const clause of declaration.heritageClauses ?? [])
          for (const type of clause.types) visitType(type, symbol.name);
        for (const member of declaration.members) {
          const name = member.name?.getText() ?? 'constructor';
          if (isPublic(member)) visitType(member, `${symbol.name}.${name}`);
        }
      } else visitType(declaration, symbol.name);
    }
  };
  for (const symbol of exported) visitSymbol(symbol);
  assert.deepEqual([...missing], [], 'exported signatures use types src/index.ts does not export');
});
