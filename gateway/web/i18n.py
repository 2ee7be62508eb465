"""The console's languages: English as written in the templates, and Brazilian Portuguese.

`?lang=` chooses and a cookie keeps the choice; else the browser's Accept-Language; else
`gateway.default_locale`. Every text a template passes to `_()` has its pt-BR line here
(tests/test_console.py holds the catalogue complete).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from aiohttp import web

LANGUAGES = ("pt-BR", "en")
LANG_COOKIE = "pgw_lang"

PT_BR: dict[str, str] = {
    "Operations console": "Console de operações",
    "Sign in": "Entrar",
    "Sign out": "Sair",
    "API key": "Chave de API",
    "A key with the scope console or admin.": "Uma chave com o escopo console ou admin.",
    "That key cannot sign in: it is wrong, revoked, or lacks the scope console.":
        "Essa chave não pode entrar: está errada, revogada ou não tem o escopo console.",
    "Too many failed sign-ins from your address: try again in {minutes} min.":
        "Tentativas de entrada falhas demais a partir do seu endereço: tente de novo em {minutes} min.",
    "Scratch pad": "Rascunho",
    "A draft of this template rendered with its sample (and the data typed in), never saved.":
        "Um rascunho deste modelo, renderizado com a amostra (e os dados digitados), nunca salvo.",
    "Email subject": "Assunto do e-mail",
    "Email text": "Texto do e-mail",
    "Email HTML": "HTML do e-mail",
    "Render the draft": "Renderizar o rascunho",
    "Draft": "Rascunho renderizado",
    "HTML source": "Código HTML",
    "Signed in as": "Conectado como",
    "until": "até",
    "Main menu": "Menu principal",
    "Language": "Idioma",
    "Protocols": "Protocolos",
    "Outbox": "Fila de envio",
    "Reports": "Relatórios",
    "Templates": "Modelos",
    "Keys": "Chaves",
    "Find protocols": "Buscar protocolos",
    "Number": "Número",
    "Phone": "Telefone",
    "Email": "E-mail",
    "Status": "Situação",
    "any": "qualquer",
    "Only overdue": "Somente vencidos",
    "Category": "Categoria",
    "Profile": "Perfil",
    "Opened from": "Aberto de",
    "Opened to": "Aberto até",
    "Search": "Buscar",
    "No protocol matches.": "Nenhum protocolo encontrado.",
    "Subject": "Assunto",
    "Opened": "Aberto em",
    "Deadline": "Prazo",
    "Resolved": "Resolvido em",
    "Next page": "Próxima página",
    "Protocol": "Protocolo",
    "Retention until": "Guardar até",
    "Legal hold": "Retenção legal",
    "yes": "sim",
    "no": "não",
    "Place a legal hold": "Aplicar retenção legal",
    "Lift the legal hold": "Retirar retenção legal",
    "Reason": "Motivo",
    "Download the evidence (JSON)": "Baixar a evidência (JSON)",
    "Send again": "Enviar de novo",
    "Channel": "Canal",
    "with the full history": "com o histórico completo",
    "Timeline": "Linha do tempo",
    "Event": "Evento",
    "posted by": "enviado por",
    "Notifications": "Notificações",
    "Attempts": "Tentativas",
    "Receipts": "Recibos",
    "as sent": "como enviada",
    "to": "para",
    "Consumer requests": "Pedidos do consumidor",
    "requested": "pedido em",
    "due": "prazo",
    "fulfilled": "atendido em",
    "not yet": "ainda não",
    "by": "por",
    "Note (no personal data)": "Observação (sem dados pessoais)",
    "Mark as sent by post": "Marcar como enviado pelo correio",
    "The check took too long to finish here: run protocol-gateway templates check {name}.":
        "A verificação demorou demais para terminar aqui: execute protocol-gateway templates check {name}.",
    "Needs attention": "Precisa de atenção",
    "Nothing needs attention.": "Nada precisa de atenção.",
    "Retry": "Tentar de novo",
    "Requeue every": "Recolocar na fila todas as",
    "Requeue": "Recolocar na fila",
    "Why": "Motivo",
    "Tries": "Tentativas",
    "Created": "Criada em",
    "Last used": "Último uso",
    "never": "nunca",
    "Compliance report": "Relatório de conformidade",
    "From": "De",
    "To": "Até",
    "Group by": "Agrupar por",
    "category": "categoria",
    "profile": "perfil",
    "channel": "canal",
    "Show": "Mostrar",
    "Download CSV": "Baixar CSV",
    "Resolved in time": "Resolvidos no prazo",
    "Protocols opened": "Abertos",
    "Protocols resolved": "Resolvidos",
    "Open past deadline": "Abertos fora do prazo",
    "Requests": "Pedidos",
    "In time": "No prazo",
    "Total": "Total",
    "(none)": "(sem)",
    "Opened and resolved in time, per period": "Abertos e resolvidos no prazo, por período",
    "resolved in time": "resolvidos no prazo",
    "opened": "abertos",
    "Audience": "Público",
    "Locales": "Idiomas",
    "Channels": "Canais",
    "Preview": "Prévia",
    "Data (JSON) over the sample": "Dados (JSON) sobre o exemplo",
    "Render": "Renderizar",
    "SMS segments": "Segmentos de SMS",
    "WhatsApp: one message": "WhatsApp: uma mensagem",
    "characters": "caracteres",
    "Outside the 24-hour window it goes as the approved template":
        "Fora da janela de 24 horas, vai como o modelo aprovado",
    "no content_sid for this locale yet": "ainda sem content_sid para este idioma",
    "Free text: only inside the 24-hour window": "Texto livre: só dentro da janela de 24 horas",
    "The body to submit for approval": "O texto a enviar para aprovação",
    "Findings of templates check": "Achados do templates check",
    "No findings.": "Nenhum achado.",
    "Scratch pad": "Rascunho",
    "A draft, rendered in the sandbox with the template's sample; nothing is saved.":
        "Um rascunho, renderizado na sandbox com o exemplo do modelo; nada é salvo.",
    "Name": "Nome",
    "Scopes": "Escopos",
    "Last used": "Último uso",
    "revoked": "revogada",
    "active": "ativa",
    "Revoke": "Revogar",
    "Create a key": "Criar uma chave",
    "Create": "Criar",
    "The new key, shown once:": "A nova chave, mostrada uma única vez:",
    "Error": "Erro",
    "Back": "Voltar",
    "Done.": "Feito.",
    "The form has expired: reload the page.": "O formulário expirou: recarregue a página.",
    "There is no such page.": "Esta página não existe.",
    "This page does not take that method.": "Esta página não aceita esse método.",
    "The request was refused.": "O pedido foi recusado.",
    "The database is unavailable; try again.": "O banco de dados está indisponível; tente de novo.",
    "An unexpected error occurred; it has been logged.": "Ocorreu um erro inesperado; ele foi registrado.",
    "Skip to content": "Ir para o conteúdo",
    "Schedules": "Agendamentos",
    "disabled": "desativado",
    "Next runs": "Próximas execuções",
    "Last runs": "Últimas execuções",
    "When": "Quando",
    "What it did": "O que fez",
    "It has not run yet.": "Ainda não rodou.",
    # The outbox's reasons (gateway/web/reasons.py).
    "The phone number is not valid: correct the consumer's number upstream.":
        "O número de telefone não é válido: corrija o número do consumidor no sistema de origem.",
    "The consumer replied STOP to our SMS number: they receive no SMS until they text START.":
        "O consumidor respondeu STOP ao nosso número: não recebe SMS até enviar START.",
    "SMS to this region is not enabled in the Twilio account.": "SMS para esta região não está habilitado na conta Twilio.",
    "The number cannot receive SMS (a landline?): use email.": "O número não recebe SMS (telefone fixo?): use o e-mail.",
    "The phone was unreachable (switched off or out of coverage).":
        "O telefone estava inalcançável (desligado ou fora da área de cobertura).",
    "The phone number does not exist according to the carrier.": "Segundo a operadora, o número não existe.",
    "The carrier says it cannot deliver to this number (a landline?).":
        "A operadora diz que não consegue entregar a este número (telefone fixo?).",
    "The carrier filtered the message as spam.": "A operadora filtrou a mensagem como spam.",
    "WhatsApp: free text outside the 24-hour window; an approved template is needed.":
        "WhatsApp: texto livre fora da janela de 24 horas; é preciso um modelo aprovado.",
    "This number has no WhatsApp: the message went on by the next channel of its chain.":
        "Este número não tem WhatsApp: a mensagem seguiu pelo próximo canal da sua cadeia.",
    "WhatsApp: the consumer has not written in 24 hours and this message has no approved template for its "
    "locale: add its content_sid to template.toml ([whatsapp]).":
        "WhatsApp: o consumidor não escreveu nas últimas 24 horas e esta mensagem não tem modelo aprovado para o "
        "seu idioma: acrescente o content_sid dela ao template.toml ([whatsapp]).",
    "Gave up after dispatch.give_up_after of retries: retry once the cause is fixed.":
        "Desistiu após dispatch.give_up_after de tentativas: tente de novo quando a causa for resolvida.",
    "The provider refused it for good.": "O provedor recusou definitivamente.",
    "The provider accepted it but could not deliver it.": "O provedor aceitou, mas não conseguiu entregar.",
    "The provider did not answer in time: it may have been sent; it will be sent again.":
        "O provedor não respondeu a tempo: pode ter sido enviada; será enviada de novo.",
}
CATALOGUES = {"pt-BR": PT_BR, "en": {}}


def choose(request: web.Request, default: str) -> str:
    for asked in (request.query.get("lang"), request.cookies.get(LANG_COOKIE)):
        if asked in LANGUAGES:
            return asked
    for part in request.headers.get("Accept-Language", "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("pt"):
            return "pt-BR"
        if tag.startswith("en"):
            return "en"
    return "pt-BR" if default.lower().startswith("pt") else "en"


def translator(lang: str) -> Callable[[str], str]:
    catalogue = CATALOGUES.get(lang, {})
    return lambda text: catalogue.get(text, text)


def when(value: str | datetime | None, zone: str = "UTC") -> str:
    """A time as people read it in the console, in gateway.timezone: `2026-11-22 11:43 -03`; a dash for none."""
    if value is None:
        return "—"
    moment = datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value
    return moment.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")
