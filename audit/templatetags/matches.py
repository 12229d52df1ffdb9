from django import template

from samples import matching

register = template.Library()


@register.filter
def match_reason(match) -> str:
    """Why an item matched: a matching.Match or an audit.DecisionTarget (both have the fields)."""
    return matching.match_reason(match.matched_by, match.distance)
