/**
 * What a resolver's caller selected, so a resolver can skip work nobody asked for.
 */
import { Kind, type GraphQLResolveInfo, type SelectionSetNode } from 'graphql';

/**
 * True when the field being resolved selects `name` among its subfields, through inline
 * fragments and fragment spreads too. Directives are not evaluated: a field under
 * `@skip` or `@include` counts as selected, which errs on the side of doing the work.
 */
export function selectsSubfield(info: GraphQLResolveInfo, name: string): boolean {
  const seen = new Set<string>();
  const search = (selectionSet: SelectionSetNode | undefined): boolean =>
    selectionSet?.selections.some((selection) => {
      switch (selection.kind) {
        case Kind.FIELD:
          return selection.name.value === name;
        case Kind.INLINE_FRAGMENT:
          return search(selection.selectionSet);
        case Kind.FRAGMENT_SPREAD: {
          const fragment = info.fragments[selection.name.value];
          if (!fragment || seen.has(fragment.name.value)) return false;
          seen.add(fragment.name.value);
          return search(fragment.selectionSet);
        }
        default:
          return false;
      }
    }) ?? false;
  return info.fieldNodes.some((node) => search(node.selectionSet));
}
