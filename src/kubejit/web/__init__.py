"""The broker's web pages under ``/ui/``: sign-in, requests, approvals, grants, admin views.

Server-rendered (Jinja2) with htmx for the live parts; no JavaScript build step. Every page calls the
same ``GrantService`` methods as the API, so the rules (self-approval, N approvers, visibility,
admin-only views) are the service's, never copied here.
"""
