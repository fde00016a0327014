"""The dashboard's words in Vietnamese (the default) and English."""

from __future__ import annotations

from collections.abc import Callable

LANGUAGES = ("vi", "en")
LABELS: dict[str, tuple[str, str]] = {
    "title": ("Bảng điều khiển chỉ số", "Indicator dashboard"),
    "rankings": ("Xếp hạng", "Rankings"),
    "scorecard": ("Phiếu điểm", "Scorecard"),
    "trend": ("Xu hướng", "Trends"),
    "history": ("Nhật ký", "Audit trail"),
    "publications": ("Công bố", "Publications"),
    "login": ("Đăng nhập", "Log in"),
    "logout": ("Đăng xuất", "Log out"),
    "logged_in_as": ("Khóa", "Key"),
    "catalogue": ("Bộ chỉ số", "Catalogue"),
    "version": ("Phiên bản", "Version"),
    "period": ("Năm", "Period"),
    "stage": ("Giai đoạn", "Stage"),
    "pillar": ("Chỉ số chính", "Pillar"),
    "unit": ("Đơn vị", "Unit"),
    "all_pillars": ("Tổng điểm", "Total"),
    "show": ("Xem", "Show"),
    "self_assessment": ("Tự đánh giá", "Self-assessment"),
    "verification": ("Kết quả đánh giá", "Verified"),
    "published": ("Đã công bố", "Published"),
    "rank": ("Hạng", "Rank"),
    "code": ("Mã", "Code"),
    "total": ("Tổng điểm", "Total"),
    "points": ("Điểm", "Points"),
    "max_points": ("Điểm tối đa", "Max"),
    "points_missing": ("Điểm còn thiếu", "Points missing"),
    "status": ("Trạng thái", "Status"),
    "self_assessed": ("Tự đánh giá", "Self-assessed"),
    "verified": ("Kết quả đánh giá", "Verified"),
    "gap": ("Chênh lệch", "Gap"),
    "reason": ("Lý do của cơ quan đánh giá", "Evaluator's reason"),
    "lead_agency": ("Cơ quan chủ trì", "Lead agency"),
    "deadline": ("Thời hạn", "Deadline"),
    "rank_change": ("Thay đổi hạng", "Rank change"),
    "points_change": ("Thay đổi điểm", "Points change"),
    "previous": ("Kỳ trước", "Previous period"),
    "new_unit": ("Đơn vị mới, thay cho", "New unit, standing for"),
    "indicator": ("Chỉ số", "Indicator"),
    "bar_chart": ("Tổng điểm theo đơn vị", "Total points by unit"),
    "heat_map": ("Tỷ lệ điểm đạt theo chỉ số chính", "Share of the max by pillar"),
    "where_points_are": ("Điểm còn có thể đạt", "Where the points are"),
    "download": ("Tải bảng", "Download the table"),
    "total_and_pillars": ("Tổng điểm và các chỉ số chính", "Total and pillars"),
    "value": ("Giá trị", "Value"),
    "not_applicable": ("Không áp dụng", "Not applicable"),
    "score": ("Điểm sau sự kiện", "Score after the event"),
    "explanation": ("Giải thích điểm", "Score explanation"),
    "history_note": (
        "mỗi dòng số liệu kèm điểm và cách tính (số liệu đã thay vào công thức) ngay sau sự kiện",
        "each measurement with the score it left and its formula, the numbers substituted",
    ),
    "scored": ("Đã chấm", "Scored"),
    "missing": ("Thiếu dữ liệu", "Missing"),
    "reported": ("Đã báo cáo", "Reported"),
    "not_applicable_claimed": ("Đề nghị không áp dụng", "Not applicable (claimed)"),
    "not_applicable_accepted": ("Không áp dụng (đã chấp nhận)", "Not applicable (accepted)"),
    "yes": ("Có", "Yes"),
    "no": ("Không", "No"),
    "formula": ("Cách tính", "Formula"),
    "accepted": ("Chấp nhận", "Accepted"),
    "adjusted": ("Điều chỉnh", "Adjusted"),
    "ev_submitted": ("Tự đánh giá", "Self-assessment submitted"),
    "ev_response": ("Bổ sung minh chứng", "Answer to an evidence request"),
    "ev_not_applicable": ("Đề nghị không áp dụng", "Not applicable claimed"),
    "ev_verification": ("Thẩm định", "Verification"),
    "ev_evidence": ("Yêu cầu bổ sung minh chứng", "Evidence requested"),
    "ev_closed": ("Khóa kỳ đánh giá", "Period closed"),
    "ev_reopened": ("Mở lại cho đơn vị", "Reopened for the unit"),
    "ev_context": ("Thông tin chung", "General information"),
    "ev_published": ("Công bố kết quả", "Result published"),
    "no_data": ("Chưa có dữ liệu", "No data"),
    "not_published": ("Kết quả của kỳ này chưa được công bố.", "The result of this period is not published."),
    "median": ("Trung vị nhóm", "Peer median"),
    "best": ("Cao nhất nhóm", "Peer best"),
    "predecessor": ("Đơn vị tiền thân", "Predecessor"),
    "successor": ("Đơn vị kế thừa", "Successor"),
    "when": ("Thời điểm", "When"),
    "by": ("Người thực hiện", "By"),
    "event": ("Sự kiện", "Event"),
    "inputs": ("Số liệu", "Inputs"),
    "decision": ("Quyết định", "Decision"),
    "sequence": ("Số thứ tự", "Sequence"),
    "published_at": ("Công bố lúc", "Published at"),
    "published_by": ("Người phê duyệt", "Approved by"),
    "cut": ("Tại sự kiện", "At event"),
    "replaces": ("Thay thế", "Replaces"),
    "restated_by": ("Được đính chính bởi", "Restated by"),
    "incomplete": ("Công bố khi chưa đủ", "Published incomplete"),
    "moved": ("Thay đổi hạng", "Ranks moved"),
    "none": ("Không có", "None"),
    "api_key": ("Khóa API", "API key"),
    "login_why": (
        "Kết quả chưa công bố chỉ xem được với khóa API. Kết quả đã công bố là công khai.",
        "Unpublished results need an API key. Published results are public.",
    ),
    "key_refused": ("Khóa API không hợp lệ, đã thu hồi hoặc hết hạn.", "The API key is unknown, revoked or expired."),
    "forbidden": ("Khóa này không được xem nội dung này.", "This key may not read this page."),
    "error": ("Không thể hiển thị trang", "The page cannot be shown"),
    "back": ("Về trang xếp hạng", "Back to the rankings"),
    "language": ("English", "Tiếng Việt"),
    "general_information": ("Thông tin chung", "General information"),
    "of_max": ("trên", "of"),
    "as_of": ("Dữ liệu đến sự kiện", "Data up to event"),
    "nothing": ("Chưa có gì để hiển thị.", "Nothing to show yet."),
    "predecessors_note": (
        "Trước khi đơn vị được thành lập, mỗi đơn vị tiền thân có đường riêng; số liệu không cộng gộp.",
        "Before the unit existed, each predecessor has its own line; figures are never summed.",
    ),
}


def translator(lang: str) -> Callable[[str], str]:
    index = 1 if lang == "en" else 0

    def t(key: str) -> str:
        found = LABELS.get(key)
        return found[index] if found else key

    return t


def language(requested: str | None) -> str:
    return requested if requested in LANGUAGES else "vi"
