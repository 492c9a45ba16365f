"""/dashboard/team: the members of the current merchant and their roles, open invitations, inviting by
email, changing roles, removing members; and /dashboard/invitations/<token>, where an invitee joins (a new
account with a password, or an existing one)."""

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from app.dashboard import bp, flash_form_errors
from app.dashboard.access import current_membership, current_merchant, dashboard_actor, public, requires
from app.dashboard.auth import _complete
from app.dashboard.forms import AcceptInvitationForm, ActionForm, InviteForm, RoleForm
from app.extensions import db
from app.permissions import PERMISSIONS, ROLE_DESCRIPTIONS, ROLES
from app.services import accounts, team
from app.services.errors import NotFound, ServiceError


def _page(invite_form=None, link=None, status=200):
    return render_template(
        "dashboard/team/index.html", members=team.members(current_merchant),
        invitations=team.open_invitations(current_merchant), invite_form=invite_form or InviteForm(formdata=None),
        role_form=RoleForm, action_form=ActionForm(), roles=ROLES, role_descriptions=ROLE_DESCRIPTIONS,
        permissions=PERMISSIONS, link=link, hours=team.INVITATION_HOURS,
    ), status


def _by():
    return {"by": current_membership, "actor": dashboard_actor()}


@bp.get("/team", endpoint="team")
@requires("team.manage")
def team_page():
    return _page()


@bp.post("/team/invitations")
@requires("team.manage")
def invite():
    form = InviteForm()
    if not form.validate_on_submit():
        flash_form_errors(form)
        return _page(invite_form=form, status=422)
    try:
        invitation, link, sent = team.invite(current_merchant, form.email.data, form.role.data, **_by())
    except ServiceError as exc:
        db.session.rollback()
        form.email.errors.append(exc.message)
        flash(f"The invitation was not sent: {exc.message}.", "error")
        return _page(invite_form=form, status=422)
    if sent:
        flash(f"Invitation sent to {invitation.email} as {invitation.role}; the link works once, for "
              f"{team.INVITATION_HOURS} hours.", "success")
        return redirect(url_for("dashboard.team"), 303)
    # Rendered, not redirected: the link must not travel in a URL or the flash cookie.
    flash(f"The email to {invitation.email} could not be sent. Give them this link yourself (it works once, for "
          f"{team.INVITATION_HOURS} hours).", "error")
    return _page(link=link)


def _team_change(change, *args, done):
    """Run a team service call for the current member; flash `done(result)` or why it was refused."""
    try:
        result = change(current_merchant, *args, **_by())
    except NotFound:
        abort(404)
    except ServiceError as exc:
        db.session.rollback()
        flash(f"Not done: {exc.message}.", "error")
    else:
        flash(done(result), "success")
    return redirect(url_for("dashboard.team"), 303)


@bp.post("/team/invitations/<public_id>/revoke")
@requires("team.manage")
def revoke_invitation(public_id):
    ActionForm().validate_on_submit()
    return _team_change(team.revoke_invitation, public_id, done=lambda i: f"The invitation to {i.email} was withdrawn.")


@bp.post("/team/members/<public_id>/role")
@requires("team.manage")
def change_role(public_id):
    form = RoleForm()
    if not form.validate_on_submit():
        flash_form_errors(form)
        return redirect(url_for("dashboard.team"), 303)
    return _team_change(team.change_role, public_id, form.role.data,
                        done=lambda m: f"{m.user.email} is now {m.role}.")


@bp.post("/team/members/<public_id>/remove")
@requires("team.manage")
def remove_member(public_id):
    ActionForm().validate_on_submit()
    return _team_change(team.remove_member, public_id, done=lambda email: f"{email} was removed from the team.")


@bp.route("/invitations/<token>", methods=["GET", "POST"])
@public
def accept_invitation(token):
    """Join a merchant from an invitation: signed in as the invitee, with the existing account's password, or
    as a new account."""
    try:
        invitation = team.invitation_from_token(token)
    except ServiceError as exc:
        status = 404 if isinstance(exc, NotFound) else 410
        return render_template("dashboard/team/invitation_closed.html", message=exc.message), status
    existing = accounts.user_by_email(invitation.email)
    signed_in = current_user if current_user.is_authenticated else None
    form = AcceptInvitationForm()
    status = 200
    if request.method == "POST" and (signed_in is not None or form.validate_on_submit()):
        try:
            if signed_in is None and existing is not None:
                if not existing.check_password(form.password.data):
                    raise ServiceError("the password is wrong for this account", field="password")
                signed_in_as = existing
            else:
                signed_in_as = signed_in
            user, _ = team.accept_invitation(token, user=signed_in_as, display_name=form.display_name.data,
                                             password=form.password.data, ip=request.remote_addr,
                                             user_agent=request.user_agent.string)
        except ServiceError as exc:
            db.session.rollback()
            flash(f"Could not join: {exc.message}.", "error")
            status = 403 if exc.code == "wrong_user" else 422
        else:
            from flask import session

            session["merchant"] = invitation.merchant.public_id
            if signed_in is not None:
                flash(f"You joined {invitation.merchant.name} as {invitation.role}.", "success")
                return redirect(url_for("dashboard.overview"), 303)
            if user.two_factor_enabled:
                flash(f"You joined {invitation.merchant.name}. Sign in to continue.", "success")
                return redirect(url_for("dashboard.login"), 303)
            return _complete(user)
    elif request.method == "POST":
        flash_form_errors(form)
        status = 422
    return render_template("dashboard/team/accept.html", invitation=invitation, form=form, existing=existing,
                           signed_in=signed_in), status
